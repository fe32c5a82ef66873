from rest_framework import viewsets
from rest_framework.serializers import BaseSerializer

from apps.accounts.permissions import StaffModelPermissions
from apps.services.api.serializers import ServiceSerializer
from apps.services.selectors import service_list, services_visible_to
from apps.services.services import service_create, service_update


class ServiceViewSet(viewsets.ModelViewSet):
    """CRUD on the service registry, for staff with the matching model permission. Writes go through the
    service layer."""

    serializer_class = ServiceSerializer
    permission_classes = [StaffModelPermissions]
    lookup_field = "slug"

    def get_queryset(self):
        visible = services_visible_to(self.request.user)
        return service_list(kind=self.request.query_params.get("kind") or None).filter(pk__in=visible)

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.instance = service_create(**serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer) -> None:
        serializer.instance = service_update(service=serializer.instance, **serializer.validated_data)
