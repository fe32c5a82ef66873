"""Log lines: one JSON object each with LOG_FORMAT=json, a UTC timestamp with its zone, the id of the request
or task they belong to, and never a request path (which can carry a patient id)."""

import io
import json
import logging
import logging.config
import re

import pytest
from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.http import HttpResponse
from django.test import Client, RequestFactory

from apps.core.log_filters import gunicorn_logconfig
from apps.core.middleware import RequestIdMiddleware

logger = logging.getLogger("tests.core.logging")


def _configured_formatter(name: str) -> logging.Formatter:
    """The formatter settings.LOGGING declares under `name`, built the way dictConfig builds it."""
    return logging.config.DictConfigurator({}).configure_formatter(dict(settings.LOGGING["formatters"][name]))


@pytest.fixture
def console_log():
    """What the configured console handler writes during the test, in the format the test picks."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream, previous_formatter = io.StringIO(), handler.formatter
    previous_stream = handler.setStream(stream)

    def use(format_name: str) -> io.StringIO:
        handler.setFormatter(_configured_formatter(format_name))
        return stream

    yield use
    handler.setStream(previous_stream)
    handler.setFormatter(previous_formatter)


def _records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_logged_while_a_request_is_handled_carries_its_request_id(console_log):
    stream = console_log("json")

    def view(request):
        logger.warning("loading the patient card")
        return HttpResponse()

    response = RequestIdMiddleware(view)(
        RequestFactory().get("/", HTTP_X_REQUEST_ID="0f8b5a3e-2c1d-4e7a-9b6c-5d4e3f2a1b0c")
    )
    logger.warning("after the request")

    during, after = _records(stream)
    assert response["X-Request-ID"] == "0f8b5a3e-2c1d-4e7a-9b6c-5d4e3f2a1b0c"
    assert (
        during["request_id"] == "0f8b5a3e-2c1d-4e7a-9b6c-5d4e3f2a1b0c"
        and during["message"] == "loading the patient card"
    )
    assert during["level"] == "WARNING" and during["logger"] == "tests.core.logging"
    assert after["request_id"] == "-"


def test_timestamps_are_utc_with_their_zone(console_log):
    stream = console_log("plain")
    logger.warning("plain line")
    line = stream.getvalue().strip()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING tests\.core\.logging \[-\] plain line$", line)


@pytest.mark.django_db
@pytest.mark.urls("tests.core.failing_urls")
def test_a_json_server_error_line_names_the_route_not_the_patient_id(console_log):
    stream = console_log("json")
    response = Client(raise_request_exception=False).get("/api/v1/patients/424242/fail/")
    assert response.status_code == 500
    (error,) = [record for record in _records(stream) if record["logger"] == "django.request"]
    assert error["message"].startswith("Internal Server Error: route api/v1/patients/<id:patient_id>/fail/")
    assert error["request_id"] == response["X-Request-ID"]
    assert error["status_code"] == 500
    assert "exc_info" in error and "RuntimeError" in error["exc_info"]
    # Django attaches the request object to the record; its text is the raw path.
    assert "request" not in error
    assert "424242" not in stream.getvalue()


def test_a_celery_task_s_lines_carry_its_task_id(console_log):
    stream = console_log("json")
    task_prerun.send(sender=None, task_id="task-7", task=None, args=(), kwargs={})
    logger.warning("inside the task")
    task_postrun.send(sender=None, task_id="task-7", task=None, args=(), kwargs={}, retval=None, state="SUCCESS")
    logger.warning("between tasks")
    inside, between = _records(stream)
    assert inside["request_id"] == "task-7"
    assert between["request_id"] == "-"


def test_a_task_run_eagerly_inside_a_request_gives_the_request_its_id_back(console_log):
    stream = console_log("json")

    def view(request):
        task_prerun.send(sender=None, task_id="task-8", task=None, args=(), kwargs={})
        logger.warning("inside the eager task")
        task_postrun.send(sender=None, task_id="task-8", task=None, args=(), kwargs={}, retval=None, state="SUCCESS")
        logger.warning("after the eager task")
        return HttpResponse()

    RequestIdMiddleware(view)(RequestFactory().get("/", HTTP_X_REQUEST_ID="1f8b5a3e-2c1d-4e7a-9b6c-5d4e3f2a1b0c"))
    inside, after = _records(stream)
    assert inside["request_id"] == "task-8"
    assert after["request_id"] == "1f8b5a3e-2c1d-4e7a-9b6c-5d4e3f2a1b0c"


def test_gunicorn_json_access_lines_have_fields_and_no_path():
    stream = io.StringIO()
    config = gunicorn_logconfig("json")
    config["handlers"]["json"]["stream"] = stream
    access, root = logging.getLogger("gunicorn.access"), logging.getLogger()
    saved = access.handlers[:], access.propagate, access.level
    root_saved = root.handlers[:], root.level  # the config sets gunicorn's root, which has no handler
    try:
        logging.config.dictConfig(config)
        # The atoms gunicorn passes with its access format (glogging.Logger.atoms), path and query included.
        atoms = {"h": "10.0.0.7", "m": "GET", "s": "200", "M": 3, "{x-request-id}o": "req-9"}
        atoms |= {"U": "/api/v1/patients/424242/", "q": "mrn=MRN-0042", "r": "GET /fhir/Patient?identifier=x"}
        access.info('%(h)s "%(m)s" %(s)s %(M)sms request=%({x-request-id}o)s', atoms)
    finally:
        access.handlers[:], access.propagate = saved[0], saved[1]
        access.setLevel(saved[2])
        root.handlers[:] = root_saved[0]
        root.setLevel(root_saved[1])
    (line,) = _records(stream)
    assert line["status"] == 200 and line["method"] == "GET" and line["duration_ms"] == 3
    assert line["request_id"] == "req-9" and line["remote_addr"] == "10.0.0.7"
    assert "424242" not in stream.getvalue() and "MRN-0042" not in stream.getvalue()


def test_the_live_server_s_uvicorn_lines_take_the_log_format(console_log):
    stream = console_log("json")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)
    (line,) = _records(stream)
    assert line["logger"] == "uvicorn.error" and line["message"] == "Started server process [7]"


def test_plain_logs_leave_gunicorn_its_own_format():
    assert gunicorn_logconfig("plain") == {}


@pytest.mark.parametrize("offered", ["abc\n", "a" * 64 + "\n"])
def test_a_request_id_ending_in_a_newline_is_replaced_not_echoed(offered):
    """`$` matches before a final newline: "abc\\n" was kept, split the request's log lines (a forged line
    after it) and, echoed back, raised BadHeaderError (a 500); 64 characters and a newline also overflowed the
    audit record's request id."""
    response = RequestIdMiddleware(lambda request: HttpResponse())(RequestFactory().get("/", HTTP_X_REQUEST_ID=offered))
    assert "\n" not in response["X-Request-ID"] and len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_sql_and_its_parameters_are_never_logged_even_at_debug(caplog):
    """A guard: Django's SQL lines carry each statement's parameters (an MRN here); its `django` logger stays at
    INFO whatever LOG_LEVEL says, so they never reach the log."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.clinical.models import Patient

    caplog.set_level(logging.DEBUG)  # the root logger at DEBUG, as LOG_LEVEL=DEBUG sets it
    with CaptureQueriesContext(connection):  # the debug cursor, which logs each statement
        Patient.objects.filter(mrn="MRN-LOGGED-123").exists()
    assert "MRN-LOGGED-123" not in caplog.text


@pytest.mark.django_db
def test_an_oversized_body_is_one_log_line_without_a_traceback(console_log, settings, issue_token):
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE wrote Django's whole traceback (about 50 lines) for each
    such request, twice under DEBUG: a client could flood the log with a loop of them."""
    token = issue_token("patient:read")
    stream = console_log("plain")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = Client(raise_request_exception=False).post(
        "/fhir/Patient/_search",
        data="name=" + "x" * 4096,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 413 and response.json()["issue"][0]["code"] == "too-long"
    lines = stream.getvalue().splitlines()
    assert [line for line in lines if "django.security.RequestDataTooBig" in line]
    assert not [line for line in lines if "Traceback" in line]


def test_django_s_own_console_handler_is_off():
    """Django's DEFAULT_LOGGING prints django.* records under DEBUG through a handler of its own, and they
    reach ours too: each line twice, the second without our format, request id or path redaction."""
    assert logging.getLogger("django").handlers == []
    assert logging.getLogger("django").propagate
