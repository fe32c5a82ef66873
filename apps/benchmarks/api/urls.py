from django.urls import path

from apps.benchmarks.api.views import BenchmarkRunDetailView, BenchmarkRunListView

urlpatterns = [
    path("benchmarks/runs/", BenchmarkRunListView.as_view(), name="benchmark-run-list"),
    path("benchmarks/runs/<int:run_id>/", BenchmarkRunDetailView.as_view(), name="benchmark-run-detail"),
]
