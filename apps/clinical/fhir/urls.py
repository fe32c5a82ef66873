from django.urls import path, re_path

from apps.clinical.fhir import views

urlpatterns = [path("metadata", views.CapabilityStatementView.as_view(), name="fhir-metadata")]
for resource_type, view in views.SEARCH_VIEWS.items():
    name = resource_type.lower()
    urlpatterns += [
        # POST [type] would be a create, which this server does not offer: searches are GET or _search.
        path(resource_type, view.as_view(http_method_names=["get", "head"]), name=f"fhir-{name}-search"),
        path(f"{resource_type}/_search", view.as_view(http_method_names=["post"]), name=f"fhir-{name}-post-search"),
    ]
urlpatterns += [
    path("Patient/<str:patient_id>", views.PatientReadView.as_view(), name="fhir-patient-read"),
    re_path(r"^(?P<rest>.*)$", views.UnsupportedView.as_view(), name="fhir-unsupported"),
]
