from django.urls import path

from apps.audit.api.views import AuditEventListView

urlpatterns = [path("audit/", AuditEventListView.as_view(), name="audit-list")]
