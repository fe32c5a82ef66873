from django.urls import path, register_converter

from apps.clinical.api import views
from apps.clinical.api.converters import PatientIdConverter

register_converter(PatientIdConverter, "patient_id")

urlpatterns = [
    path("patients/", views.PatientListView.as_view(), name="patient-list"),
    path("patients/window/", views.PatientWindowView.as_view(), name="patient-window"),
    path("patients/lookup/", views.PatientLookupView.as_view(), name="patient-lookup"),
    path("patients/<patient_id:patient_id>/", views.PatientDetailView.as_view(), name="patient-detail"),
    path("patients/<patient_id:patient_id>/vitals/", views.PatientVitalsView.as_view(), name="patient-vitals"),
    path(
        "patients/<patient_id:patient_id>/encounters/", views.PatientEncountersView.as_view(), name="patient-encounters"
    ),
    path(
        "patients/<patient_id:patient_id>/medications/",
        views.PatientMedicationsView.as_view(),
        name="patient-medications",
    ),
]
