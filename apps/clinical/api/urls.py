from django.urls import path

from apps.clinical.api import views

urlpatterns = [
    path("patients/", views.PatientListView.as_view(), name="patient-list"),
    path("patients/lookup/", views.PatientLookupView.as_view(), name="patient-lookup"),
    path("patients/<int:patient_id>/", views.PatientDetailView.as_view(), name="patient-detail"),
    path("patients/<int:patient_id>/vitals/", views.PatientVitalsView.as_view(), name="patient-vitals"),
    path("patients/<int:patient_id>/encounters/", views.PatientEncountersView.as_view(), name="patient-encounters"),
    path("patients/<int:patient_id>/medications/", views.PatientMedicationsView.as_view(), name="patient-medications"),
]
