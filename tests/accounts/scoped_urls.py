"""The product's routes plus one endpoint that needs a scope, to test scope enforcement alone."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import HasScope
from controlplane.urls import urlpatterns as product_urlpatterns


class ScopedView(APIView):
    permission_classes = [HasScope]
    required_scopes = ["patient:read"]

    def get(self, request):
        return Response({"ok": True})


class PerMethodScopedView(APIView):
    """DELETE has no entry in `required_scopes`."""

    permission_classes = [HasScope]
    required_scopes = {"GET": ["patient:read"], "POST": ["patient:write"]}

    def get(self, request):
        return Response({"ok": True})

    def delete(self, request):
        return Response({"deleted": True})


class NoScopeNamedView(APIView):
    """HasScope on a view that forgot to name its scopes."""

    permission_classes = [HasScope]

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    *product_urlpatterns,
    path("scoped/", ScopedView.as_view()),
    path("scoped-per-method/", PerMethodScopedView.as_view()),
    path("no-scope-named/", NoScopeNamedView.as_view()),
]
