from django.urls import path

from apps.accounts.api.views import WhoAmIView

urlpatterns = [
    path("whoami/", WhoAmIView.as_view(), name="whoami"),
]
