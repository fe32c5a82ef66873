from rest_framework import serializers, viewsets
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from apps.accounts.permissions import StaffModelPermissions
from apps.core.api.params import validated_query
from apps.services.api.serializers import ServiceSerializer
from apps.services.models import Service
from apps.services.selectors import service_list, services_visible_to
from apps.services.services import service_create, service_delete, service_update


class ServicePagination(LimitOffsetPagination):
    max_limit = 1000


class ServiceListInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Service.Kind.choices, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=ServicePagination.max_limit, required=False)
    offset = serializers.IntegerField(min_value=0, required=False)


class ServiceViewSet(viewsets.ModelViewSet):
    """CRUD on the service registry, for staff with the matching model permission. Writes go through the
    service layer."""

    serializer_class = ServiceSerializer
    permission_classes = [StaffModelPermissions]
    lookup_field = "slug"
    pagination_class = ServicePagination
    kind: str | None = None

    def list(self, request: Request, *args, **kwargs) -> Response:
        self.kind = validated_query(request, ServiceListInputSerializer).get("kind")
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        return service_list(kind=self.kind).filter(pk__in=services_visible_to(self.request.user))

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.instance = service_create(editor=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer) -> None:
        serializer.instance = service_update(
            service=serializer.instance, editor=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance: Service) -> None:
        service_delete(service=instance)  # refused (400) while it has benchmark runs, alerts... of its own
