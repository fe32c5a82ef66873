from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api.serializers import WhoAmIOutputSerializer
from apps.accounts.models import ApiClient, scope_permission_codename
from apps.accounts.scopes import SCOPES


class WhoAmIView(APIView):
    """Who the caller is and which scopes it holds: lets a client check its token before use."""

    @extend_schema(responses=WhoAmIOutputSerializer, operation_id="whoami")
    def get(self, request: Request) -> Response:
        if isinstance(request.auth, ApiClient):
            client = request.auth
            data = {"kind": "client", "name": client.name, "scopes": client.scopes, "expires_at": client.expires_at}
        else:
            user = request.user
            scopes = [s for s in SCOPES if user.has_perm(f"accounts.{scope_permission_codename(s)}")]
            data = {"kind": "user", "name": user.get_username(), "scopes": scopes, "expires_at": None}
        return Response(WhoAmIOutputSerializer(data).data)
