"""The brief's path to the autoscaling-configuration API."""

from apps.scaling.manifests import MedicalAIServiceAutoscalingConfig

__all__ = ["MedicalAIServiceAutoscalingConfig"]
