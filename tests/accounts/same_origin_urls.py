"""The product's routes plus the patient window behind SameOriginJSONSessionAuthentication, to test the
authenticator with the window's real search and audit trail."""

from django.urls import path

from apps.accounts.authentication import BearerTokenAuthentication, SameOriginJSONSessionAuthentication
from apps.clinical.api.views import PatientWindowView
from controlplane.urls import urlpatterns as product_urlpatterns


class SameOriginWindowView(PatientWindowView):
    authentication_classes = [BearerTokenAuthentication, SameOriginJSONSessionAuthentication]


urlpatterns = [path("same-origin-window/", SameOriginWindowView.as_view()), *product_urlpatterns]
