"""What the product's log handler writes about a failed request: its route template, never its path."""

import io
import json
import logging
import logging.config
import sys
from datetime import date

import pytest
from django.conf import settings
from django.db import IntegrityError
from django.test import Client

from apps.clinical.services import patient_create


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


@pytest.mark.django_db
@pytest.mark.urls("tests.core.failing_urls")
@pytest.mark.parametrize("failure", ["duplicate", "incomplete"])
def test_a_database_error_logs_its_columns_not_the_patients_values(console_log, failure):
    """PostgreSQL quotes the refused row in its error ("Key (identifier_system, mrn)=(..., MRN-7731) already
    exists", "Failing row contains (..., MRN-7731-B, Ode, Ada, ...)"), and the traceback of the 500 wrote it to the
    log twice."""
    patient = patient_create(mrn="MRN-7731", family_name="Ode", given_name="Ada", birth_date=date(1980, 1, 2))
    response = Client(raise_request_exception=False).get(f"/api/v1/patients/{patient.pk}/{failure}/")
    assert response.status_code == 500
    written = console_log.getvalue()
    assert "IntegrityError" in written and "(withheld)" in written
    assert "MRN-7731" not in written and "Ada" not in written


def test_the_json_format_withholds_the_values_a_database_error_quotes():
    formatter = logging.config.DictConfigurator({}).configure_formatter(dict(settings.LOGGING["formatters"]["json"]))
    try:
        raise IntegrityError(
            'duplicate key value violates unique constraint "clinical_patient_mrn"\n'
            "DETAIL:  Key (identifier_system, mrn)=(http://hospital.example.org/mrn, MRN-7731) already exists."
        )
    except IntegrityError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "saving %s failed", ("MRN-7731",), sys.exc_info())
    line = json.loads(formatter.format(record))
    assert "Key (identifier_system, mrn)=(withheld) already exists." in line["exc_info"]
    assert "MRN-7731" not in json.dumps(line).replace('"saving MRN-7731 failed"', "")
