from django.urls import path

from apps.inference.api.views import DeploymentOverviewView, EmbedView, GenerateView

urlpatterns = [
    path("inference/deployments/", DeploymentOverviewView.as_view(), name="inference-deployments"),
    path("inference/<slug:name>/embed", EmbedView.as_view(), name="inference-embed"),
    path("inference/<slug:name>/generate", GenerateView.as_view(), name="inference-generate"),
]
