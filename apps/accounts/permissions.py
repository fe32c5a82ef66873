"""Scope checks: a view names the scopes it needs in `required_scopes`."""

from __future__ import annotations

from rest_framework.permissions import BasePermission, DjangoModelPermissions
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.accounts.models import ApiClient, scope_permission_codename


class HasScope(BasePermission):
    """A token client must hold every required scope; a staff user the matching permissions.

    `required_scopes` is a list, or a dict from HTTP method to list; a method the dict does not name needs
    every scope it names (a handler added without its entry is closed, not open to any token), and a view
    naming no scope at all is closed to everyone (`all([])` would let any token in).
    """

    message = "This endpoint requires the scope(s): {scopes}."
    code = "insufficient_scope"

    def has_permission(self, request: Request, view: APIView) -> bool:
        required = getattr(view, "required_scopes", [])
        if isinstance(required, dict):  # per-method scopes, e.g. {"GET": [...], "POST": [...]}
            method = "GET" if request.method == "HEAD" else request.method
            required = (
                required[method] if method in required else sorted({s for scopes in required.values() for s in scopes})
            )
        required = list(required)
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if not required:  # a view that names no scope is a mistake: closed, not open to every token
            self.message = "This endpoint names no scope; it is closed until it does."
            return False
        if isinstance(request.auth, ApiClient):
            allowed = all(request.auth.has_scope(scope) for scope in required)
        else:
            allowed = (
                user.is_active
                and user.is_staff
                and all(user.has_perm(f"accounts.{scope_permission_codename(scope)}") for scope in required)
            )
        if not allowed:
            self.message = HasScope.message.format(scopes=", ".join(required))
        return allowed


def staff_can_view(permission: str) -> type[BasePermission]:
    """Staff holding a model's view permission (e.g. "caching.view_cachepolicy"): the dashboard's pages
    show what the same user's admin shows, no more."""

    class StaffCanView(BasePermission):
        message = f"Needs the {permission} permission."

        def has_permission(self, request: Request, view: APIView) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.is_staff and user.has_perm(permission))

    return StaffCanView


class StaffModelPermissions(DjangoModelPermissions):
    """Staff holding the model's permission for the method: view to read, add, change or delete to
    write, as in admin (a Viewer reads the registry, an Operator edits it, only an Administrator deletes)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.is_staff) and super().has_permission(request, view)

    def _queryset(self, view: APIView):
        # Only the model's name is needed, not the view's queryset (which asks for the user's groups).
        return view.get_serializer_class().Meta.model._default_manager.none()
