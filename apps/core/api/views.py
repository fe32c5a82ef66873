"""GET /api/v1/: what the API offers, for anyone who asks (no patient data, nothing about the caller)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.serializers import ApiRootOutputSerializer

# Link name -> URL name; every target checks its own credentials.
ROOT_LINKS = {
    "whoami": "whoami",
    "patients": "patient-list",
    "audit": "audit-list",
    "services": "service-list",
    "metrics_slo": "metrics-slo",
    "metrics_series": "metrics-series",
    "metrics_alerts": "metrics-alerts",
    "cache_namespaces": "cache-overview",
    "ratelimits": "ratelimit-overview",
    "benchmark_runs": "benchmark-run-list",
    "scaling_policies": "scaling-overview",
    "inference_deployments": "inference-deployments",
    "schema": "schema",
    "docs": "api-docs",
}


class ApiRootView(APIView):
    """The API's entry point: links to its collections, the OpenAPI schema and docs, and the FHIR base.
    The same answer with or without credentials, so it reads none (an expired token is no error here)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses=ApiRootOutputSerializer, operation_id="api_root", tags=["api"])
    def get(self, request: Request) -> Response:
        links = {name: reverse(url_name) for name, url_name in ROOT_LINKS.items()}
        links["fhir"] = reverse("fhir-metadata").removesuffix("metadata")
        return Response(
            {
                "name": "Medical AI performance control plane",
                "version": "v1",
                "authentication": "Authorization: Bearer <token> (an API client's, with scopes), "
                "or a staff session for the staff-only collections.",
                "links": links,
            }
        )
