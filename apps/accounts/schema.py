"""Tells drf-spectacular how bearer-token clients and staff sessions authenticate."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "Token from `manage.py create_api_client`."}


class SameOriginJSONSessionScheme(SessionScheme):
    """The session cookie as the patient endpoints take it: a scheme of its own (one name cannot stand for two
    authenticator classes), which says what a POST needs besides the cookie."""

    target_class = "apps.accounts.authentication.SameOriginJSONSessionAuthentication"
    name = "cookieAuthSameOrigin"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            **super().get_security_definition(auto_schema),
            "description": "The staff session cookie. A POST needs evidence that this site's pages sent it: "
            "Sec-Fetch-Site: same-origin, an Origin of this site (or of CSRF_TRUSTED_ORIGINS), an HTTPS Referer of "
            "this site, or the CSRF token from whoami (csrf_token) as X-CSRFToken.",
        }
