from django.urls import path

from apps.scaling.api.views import ManifestPreviewView, ScalingOverviewView

urlpatterns = [
    path("scaling/policies/", ScalingOverviewView.as_view(), name="scaling-overview"),
    path("scaling/policies/<int:policy_id>/manifests/", ManifestPreviewView.as_view(), name="scaling-manifests"),
]
