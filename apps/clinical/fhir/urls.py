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
for resource_type, operations in views.OPERATIONS.items():
    for operation, view in operations.items():  # before `<type>/<id>`, which would read `$lastn` as an id
        urlpatterns.append(
            # A regex with `\$` escaped: the schema's path is built from the route's text, in which a bare `$` is
            # an anchor and dropped (it listed `Observation/lastn`, which the read answers 404).
            re_path(
                rf"^{resource_type}/\${operation}$",
                view.as_view(http_method_names=["get", "head", "post"]),
                name=f"fhir-{resource_type.lower()}-{operation}",
            )
        )
for resource_type, operations in views.INSTANCE_OPERATIONS.items():
    for operation, view in operations.items():  # `Patient/5/$everything`, which the catch-all would answer 404
        urlpatterns.append(
            re_path(
                rf"^{resource_type}/(?P<patient_id>[^/]+)/\${operation}$",
                view.as_view(http_method_names=["get", "head", "post"]),
                name=f"fhir-{resource_type.lower()}-{operation}",
            )
        )
urlpatterns += [
    path("Patient/<str:patient_id>", views.PatientReadView.as_view(), name="fhir-patient-read"),
    # `Patient/5/`: the same read (and record), not the catch-all's unrecorded 404.
    path(
        "Patient/<str:patient_id>/", views.with_slash(views.PatientReadView).as_view(), name="fhir-patient-read-slash"
    ),
]
for resource_type, view in views.READ_VIEWS.items():
    name = resource_type.lower()
    urlpatterns += [
        path(f"{resource_type}/<str:resource_id>", view.as_view(), name=f"fhir-{name}-read"),
        path(f"{resource_type}/<str:resource_id>/", views.with_slash(view).as_view(), name=f"fhir-{name}-read-slash"),
    ]
urlpatterns += [
    re_path(r"^(?P<rest>.*)$", views.UnsupportedView.as_view(), name="fhir-unsupported"),
]
