from django.middleware.csrf import get_token
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api.serializers import WhoAmIOutputSerializer
from apps.accounts.models import ApiClient
from apps.accounts.selectors import scopes_held_by


class WhoAmIView(APIView):
    """Who the caller is and which scopes it holds: lets a client check its token before use."""

    @extend_schema(responses=WhoAmIOutputSerializer, operation_id="whoami")
    def get(self, request: Request) -> Response:
        if isinstance(request.auth, ApiClient):
            client = request.auth
            scopes = client.scopes if isinstance(client.scopes, list) else []  # what has_scope grants, no more
            data = {"kind": "client", "name": client.name, "scopes": scopes, "expires_at": client.expires_at}
        else:
            user = request.user
            # The dashboard's CSRF cookie is HttpOnly: its page reads the token here, for X-CSRFToken on its writes.
            data = {"kind": "user", "name": user.get_username(), "scopes": scopes_held_by(user), "expires_at": None,
                    "csrf_token": get_token(request._request)}  # fmt: skip
        return Response(WhoAmIOutputSerializer(data).data)
