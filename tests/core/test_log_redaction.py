"""What the product's log handler writes about a failed request: its route template, never its path."""

import io
import logging

import pytest
from django.test import Client


@pytest.fixture
def console_log():
    """What the configured console handler writes during the test."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.mark.django_db
@pytest.mark.urls("tests.core.failing_urls")
def test_a_server_error_logs_the_route_template_not_the_patient_id(console_log):
    response = Client(raise_request_exception=False).get("/api/v1/patients/424242/fail/")
    assert response.status_code == 500
    written = console_log.getvalue()
    assert "Internal Server Error: route api/v1/patients/<id:patient_id>/fail/" in written
    assert response["X-Request-ID"] in written
    assert "424242" not in written
