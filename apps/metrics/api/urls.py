from django.urls import path

from apps.metrics.api import views

urlpatterns = [
    path("metrics/series/", views.SeriesView.as_view(), name="metrics-series"),
    path("metrics/slo/", views.SloView.as_view(), name="metrics-slo"),
    path("metrics/alerts/", views.AlertListView.as_view(), name="metrics-alerts"),
]
