from django.urls import path

import apps.core.converters  # noqa: F401 - registers <id:...>
from apps.clinical.api import views

urlpatterns = [
    path("patients/", views.PatientListView.as_view(), name="patient-list"),
    path("patients/window/", views.PatientWindowView.as_view(), name="patient-window"),
    path("patients/lookup/", views.PatientLookupView.as_view(), name="patient-lookup"),
    path("patients/<id:patient_id>/", views.PatientDetailView.as_view(), name="patient-detail"),
    path("patients/<id:patient_id>/vitals/", views.PatientVitalsView.as_view(), name="patient-vitals"),
    path(
        "patients/<id:patient_id>/vitals/<id:observation_id>/",
        views.PatientVitalDetailView.as_view(),
        name="patient-vital-detail",
    ),
    path("patients/<id:patient_id>/encounters/", views.PatientEncountersView.as_view(), name="patient-encounters"),
    path("patients/<id:patient_id>/medications/", views.PatientMedicationsView.as_view(), name="patient-medications"),
]
