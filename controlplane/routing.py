"""Websocket routes of the live process."""

from django.urls import path

from apps.metrics.consumers import MetricsConsumer

websocket_urlpatterns = [
    path("ws/metrics/", MetricsConsumer.as_asgi()),
]
