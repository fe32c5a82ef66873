"""The product's routes plus one that fails, under a path that carries a patient id."""

from django.http import HttpRequest
from django.urls import path

from controlplane.urls import urlpatterns as product_urlpatterns


def fail(request: HttpRequest, patient_id: int):
    raise RuntimeError("the view failed")


urlpatterns = [path("api/v1/patients/<id:patient_id>/fail/", fail), *product_urlpatterns]
