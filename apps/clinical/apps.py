from django.apps import AppConfig


class ClinicalConfig(AppConfig):
    """Patient data: patients, encounters, vital signs and medications, read through DRF and FHIR R4."""

    name = "apps.clinical"
    label = "clinical"
