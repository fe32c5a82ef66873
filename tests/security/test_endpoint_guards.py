"""Every API endpoint of the product is guarded: by a scope (token clients, or staff holding the scope's
permission), by a staff model permission, or it is on the short list of public ones. A new view that
forgets its guard (DRF's default lets any token in) fails here, as does a handler that writes under a
read scope."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from apps.accounts.permissions import HasScope, StaffModelPermissions

# Answer without a caller: the API's index, the FHIR CapabilityStatement and its "unsupported" catch-all
# (at `/fhir` too), the OpenAPI schema and its Swagger UI.
PUBLIC = {"ApiRootView", "CapabilityStatementView", "UnsupportedView", "BaseWithoutSlashView", "SpectacularAPIView",
          "SpectacularSwaggerSplitView"}  # fmt: skip
# Any signed-in caller, about itself only.
SELF_ONLY = {"WhoAmIView"}
# POST handlers that read: the body keeps an MRN or search terms out of the URL.
READS_BY_POST = {"PatientLookupView", "PatientSearchView", "ObservationSearchView", "EncounterSearchView",
                 "MedicationRequestSearchView", "PatientWindowView", "ObservationLastnView",
                 "PatientEverythingView"}  # fmt: skip
UNSAFE = ("post", "put", "patch", "delete")


def _api_routes() -> list[tuple[str, type[APIView], object]]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                view = getattr(pattern.callback, "cls", None)
                if view is not None and issubclass(view, APIView):
                    yield prefix + str(pattern.pattern), view, pattern.callback

    return list(walk(get_resolver().url_patterns))


def _is_staff_guard(permission: type) -> bool:
    return issubclass(permission, StaffModelPermissions) or permission.__name__ == "StaffCanView"


def _handled_methods(view: type[APIView], callback) -> set[str]:
    actions = getattr(callback, "actions", None)
    return set(actions) if actions else {method for method in ("get", *UNSAFE) if hasattr(view, method)}


def test_every_api_view_names_its_guard():
    unguarded = []
    for route, view, _ in _api_routes():
        permissions = list(view.permission_classes)
        if view.__name__ in PUBLIC | SELF_ONLY:
            continue
        if HasScope in permissions:
            scopes = view.required_scopes
            named = scopes if isinstance(scopes, list) else [s for listed in scopes.values() for s in listed]
            if not named:
                unguarded.append(f"{route}: HasScope naming no scope")
        elif not any(_is_staff_guard(permission) for permission in permissions):
            unguarded.append(f"{route}: {view.__name__} {[p.__name__ for p in permissions]}")
    assert unguarded == []
    assert len(_api_routes()) > 30  # the walk found the product's routes


def test_no_handler_writes_under_a_read_scope_alone():
    writes_under_read = []
    for route, view, callback in _api_routes():
        if HasScope not in view.permission_classes or view.__name__ in READS_BY_POST:
            continue
        scopes = view.required_scopes
        for method in sorted(_handled_methods(view, callback) & set(UNSAFE)):
            needed = scopes.get(method.upper()) if isinstance(scopes, dict) else scopes
            if needed is None:  # unnamed in a dict: needs every scope the view names (HasScope), so not read-only
                needed = sorted({s for listed in scopes.values() for s in listed})
            if needed and all(scope.endswith(":read") for scope in needed):
                writes_under_read.append(f"{method.upper()} {route} needs only {needed}")
    assert writes_under_read == []


def _concrete(route: str) -> str:
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "x", route)
    path = re.sub(r"<(?:int|id):[^>]+>", "1", path)
    path = re.sub(r"<[^>]+>", "x", path)
    # `\$` is a literal `$` (an operation: `Observation/\$lastn$`, `Patient/(?P<patient_id>...)/\$everything$`).
    return "/" + path.replace("^", "").replace("\\$", "\0").replace("$", "").replace("\0", "$")


@pytest.mark.django_db
def test_a_token_holding_every_application_scope_reaches_no_staff_endpoint(api, issue_token):
    token = issue_token("patient:read", "patient:write", "clinical:read", "clinical:write", "inference", "audit:read")
    reached, tried = [], 0
    for route, view, callback in _api_routes():
        if not any(_is_staff_guard(permission) for permission in view.permission_classes):
            continue
        for method in sorted(_handled_methods(view, callback)):
            response = getattr(api, method)(_concrete(route), HTTP_AUTHORIZATION=f"Bearer {token}")
            tried += 1
            if response.status_code not in (401, 403):
                reached.append(f"{method.upper()} {_concrete(route)}: {response.status_code}")
    assert reached == [] and tried >= 15


@pytest.mark.django_db
def test_a_staff_sessions_writes_need_the_csrf_token(admin_user):
    """A page on another site cannot make a signed-in administrator's browser write: DRF's session
    authentication checks CSRF on every unsafe method (a bearer token, which no browser sends by itself,
    needs none)."""
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    patient = {"mrn": "MRN-1", "family_name": "Doe", "given_name": "Jo", "birth_date": "1970-01-01", "sex": "male"}
    for path, body in (("/api/v1/patients/", patient), ("/api/v1/services/", {"slug": "x", "name": "X"})):
        refused = browser.post(path, body, format="json")
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"], path
    assert browser.get("/api/v1/services/").status_code == 200  # reads need none


APPLICATION_SCOPES = ("patient:read", "patient:write", "clinical:read", "clinical:write", "inference", "audit:read")


@pytest.mark.django_db
def test_a_token_lacking_one_needed_scope_is_refused_whatever_else_it_holds(api, issue_token):
    """patient:read never reaches the audit trail or clinical data, a read scope never writes, and so on:
    for each scoped handler, a token holding every other application scope gets 403 insufficient_scope."""
    tried = 0
    for route, view, callback in _api_routes():
        if HasScope not in view.permission_classes:
            continue
        scopes = view.required_scopes
        for method in sorted(_handled_methods(view, callback)):
            needed = scopes if isinstance(scopes, list) else scopes.get(method.upper())
            for missing in needed or []:
                token = issue_token(*[scope for scope in APPLICATION_SCOPES if scope != missing])
                response = getattr(api, method)(_concrete(route), HTTP_AUTHORIZATION=f"Bearer {token}")
                assert response.status_code == 403, (method, route, missing, response.status_code)
                assert response.json().get("code") == "insufficient_scope" or "issue" in response.json()
                tried += 1
    assert tried >= 15
