from django.apps import AppConfig


class InferenceConfig(AppConfig):
    """Model deployments served with dynamic batching; quantization chosen by measurement on this host."""

    name = "apps.inference"
    label = "inference"
