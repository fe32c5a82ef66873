from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts import scopes
from apps.audit.api.serializers import AuditEventOutputSerializer, AuditListInputSerializer
from apps.audit.selectors import audit_event_pages
from apps.audit.views import PhiAPIView
from apps.core.api.pagination import keyset_pagination
from apps.core.api.params import validated_query


class AuditEventListView(PhiAPIView):
    """The audit trail, newest first, for the `audit:read` scope. Reading it is itself recorded (who looked
    at whose accesses), and so is a refusal."""

    required_scopes = [scopes.AUDIT_READ]
    resource_type = "AuditEvent"
    throttle_scope = "audit_logs"
    pagination_class = keyset_pagination("-page_id")  # the id (audit_event_list says why not always as is)

    @extend_schema(parameters=[AuditListInputSerializer], responses=AuditEventOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        query = validated_query(request, AuditListInputSerializer)
        query.pop("page_size", None)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(audit_event_pages(**query), request, view=self)
        self.audit(request, action="search", result_count=len(page), patient_id=query.get("patient_id"),
                   query={name: str(value) for name, value in query.items()})  # fmt: skip
        return paginator.get_paginated_response(AuditEventOutputSerializer(page, many=True).data)
