"""CORS for clinicians' browser apps served from another origin (django-cors-headers, CORS_ALLOWED_ORIGINS).

Without it a browser refused such an app every answer of /api/v1/ and /fhir/. A preflight carries no token: it is
answered before authentication, the rate limit and the audit trail (it spends nothing, records nothing), and every
refusal (400, 401, 403, 404, 429, an OperationOutcome) carries the headers, or the app could not read why. Unset,
nothing changes. The test client runs under the settings the product computes with the variable set (a process of
their own: settings are read at import); the browser test runs the product's gunicorn with it and Debian's Chromium.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import random
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import override_settings

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.core.cors import origin_problem
from apps.ratelimits.models import RateLimitPolicy
from apps.ratelimits.selectors import policy_cache
from tests.e2e.stack import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import database_url, embedded_env, manage, product_gunicorn, run_python, wait_for

pytestmark = pytest.mark.django_db

ALLOWED = "https://ehr.hospital.example"
OTHER = "https://elsewhere.example"
MAX_AGE = "600"
CORS_MIDDLEWARE = "corsheaders.middleware.CorsMiddleware"
# The origin pages' servers (the browser test): this suite's own ports, clear of free_port's (20000 and up).
ORIGIN_PORTS = range(9200, 9300)


@pytest.fixture(scope="session")
def cors_settings() -> dict:
    """MIDDLEWARE and the CORS_* settings as controlplane.settings computes them with the variables set."""
    code = (
        "import json\nfrom controlplane import settings as s\n"
        "print(json.dumps({k: getattr(s, k) for k in dir(s) if k.startswith('CORS_') or k == 'MIDDLEWARE'}))"
    )
    env = {**os.environ, "CORS_ALLOWED_ORIGINS": f" {ALLOWED}, ", "CORS_PREFLIGHT_MAX_AGE": MAX_AGE}
    done = run_python(code, env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def cors(cors_settings) -> Iterator[dict]:
    """The product with CORS_ALLOWED_ORIGINS set: a test client made after this loads its middleware."""
    with override_settings(**cors_settings):
        yield cors_settings


@pytest.fixture
def patient():
    return patient_create(
        mrn="MRN-4410", family_name="Okafor", given_name="Ada", birth_date=date(1971, 2, 3), sex="female"
    )


@pytest.fixture
def limit(db) -> Iterator[int]:
    """patient_data's policy (a flushed database has none), no burst cap; the test may lower it."""
    RateLimitPolicy.objects.update_or_create(
        scope="patient_data", defaults={"requests": 50, "period_seconds": 60, "burst_per_second": None, "enabled": True}
    )
    policy_cache._bump()
    yield 50
    policy_cache._bump()


@pytest.fixture
def token(issue_token) -> str:
    return issue_token("patient:read", "clinical:read", name="ehr-app")


def _preflight(api, path: str, origin: str = ALLOWED, method: str = "GET"):
    return api.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,x-purpose-of-use",
    )


def _cors_headers(response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.items() if name.lower().startswith("access-control-")}


def _listed(response, header: str) -> set[str]:
    return {part.strip().lower() for part in response.get(header, "").split(",") if part.strip()}


def test_unset_no_cors_header_is_sent_as_before(api, patient, token, limit):
    assert CORS_MIDDLEWARE not in settings.MIDDLEWARE and settings.CORS_ALLOWED_ORIGINS == []
    preflight = _preflight(api, "/fhir/Patient?family=Okafor")
    assert preflight.status_code == 401 and not _cors_headers(preflight)
    read = api.get("/fhir/Patient", {"family": "Okafor"}, HTTP_ORIGIN=ALLOWED, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert read.status_code == 200 and not _cors_headers(read)
    assert "origin" not in _listed(read, "Vary")


def test_the_middleware_is_under_the_header_middleware_and_above_every_answer_of_its_own(cors_settings):
    middleware = cors_settings["MIDDLEWARE"]
    at = middleware.index(CORS_MIDDLEWARE)
    above = ["django.middleware.security.SecurityMiddleware", "django.middleware.clickjacking.XFrameOptionsMiddleware"]
    below = [
        "apps.core.errors.RejectNulMiddleware",
        "apps.accounts.middleware.TokenInUrlMiddleware",
        "apps.core.errors.APICommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "apps.ratelimits.throttling.RateLimitHeadersMiddleware",
        "axes.middleware.AxesMiddleware",
    ]
    assert all(middleware.index(name) < at for name in above)
    assert all(middleware.index(name) > at for name in below)
    assert [name for name in middleware if name != CORS_MIDDLEWARE] == settings.MIDDLEWARE  # nothing else moves


def test_the_image_installs_every_middleware_it_names(cors_settings):
    """Middleware is named in a string, which the image's import check (tests/test_requirements_b2_image_imports.py)
    cannot see: without its pin, the image would stop at its first start with CORS_ALLOWED_ORIGINS set."""
    from tests.test_requirements_b2_image_imports import FIRST_PARTY, image_distributions, normalize

    provided_by = importlib.metadata.packages_distributions()
    third_party = {name.split(".")[0] for name in cors_settings["MIDDLEWARE"]} - FIRST_PARTY - {"django"}
    assert "corsheaders" in third_party
    missing = [top for top in third_party if not {normalize(d) for d in provided_by[top]} & image_distributions()]
    assert not missing


def test_a_preflight_spends_no_rate_limit_and_writes_no_audit_record(cors, api, patient, token, limit):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_ORIGIN": ALLOWED}
    first = api.get("/fhir/Patient", {"family": "Okafor"}, **auth)
    assert first.status_code == 200 and first["RateLimit-Remaining"] == str(limit - 1)
    records = AuditEvent.objects.count()

    for _ in range(3):
        preflight = _preflight(api, "/fhir/Patient?family=Okafor")
        assert preflight.status_code == 200, preflight.content
        assert preflight["Access-Control-Allow-Origin"] == ALLOWED
        assert {"authorization", "x-purpose-of-use", "prefer", "if-none-match", "idempotency-key"} <= _listed(
            preflight, "Access-Control-Allow-Headers"
        )
        assert "get" in _listed(preflight, "Access-Control-Allow-Methods")
        assert preflight["Access-Control-Max-Age"] == MAX_AGE
        assert "Access-Control-Allow-Credentials" not in preflight  # no staff session cookie across origins
        assert "origin" in _listed(preflight, "Vary")
        assert preflight["X-Request-ID"]  # the header middleware above it still answers
    assert AuditEvent.objects.count() == records

    second = api.get("/fhir/Patient", {"family": "Okafor"}, **auth)
    assert second.status_code == 200 and second["RateLimit-Remaining"] == str(limit - 2)  # the preflights spent none
    assert AuditEvent.objects.count() == records + 1  # the read is recorded, as ever


async def test_the_asgi_handler_answers_a_preflight_too(cors):
    """The live process (uvicorn, the ASGI application) serves the API as well: the middleware in its async mode."""
    from django.test import AsyncClient

    asked = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    preflight = await AsyncClient().options("/fhir/Patient?family=Okafor", headers=asked)
    assert preflight.status_code == 200 and preflight["Access-Control-Allow-Origin"] == ALLOWED
    assert "authorization" in _listed(preflight, "Access-Control-Allow-Headers")
    assert preflight["X-Request-ID"]


def test_an_allowed_origin_reads_the_answer_and_the_headers_it_acts_on(cors, api, patient, token, limit):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_ORIGIN": ALLOWED}
    read = api.get(f"/fhir/Patient/{patient.pk}", **auth)
    assert read.status_code == 200
    assert read["Access-Control-Allow-Origin"] == ALLOWED and "origin" in _listed(read, "Vary")
    exposed = _listed(read, "Access-Control-Expose-Headers")
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after", "etag", "last-modified",
            "location", "x-request-id", "www-authenticate"} <= exposed  # fmt: skip
    assert {"Access-Control-Allow-Credentials", "Access-Control-Allow-Headers"}.isdisjoint(read.headers)

    unchanged = api.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_NONE_MATCH=read["ETag"], **auth)
    assert unchanged.status_code == 304 and unchanged["Access-Control-Allow-Origin"] == ALLOWED


def test_another_origin_is_named_in_no_answer(cors, api, patient, token, limit):
    records = AuditEvent.objects.count()
    preflight = _preflight(api, "/fhir/Patient?family=Okafor", origin=OTHER)
    assert not _cors_headers(preflight)  # the browser stops here: the request itself is never sent
    assert AuditEvent.objects.count() == records
    # Sent anyway (not by a browser, which would not hand the page the answer), it is answered without the headers.
    read = api.get("/fhir/Patient", {"family": "Okafor"}, HTTP_ORIGIN=OTHER, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert read.status_code == 200 and not _cors_headers(read)
    assert "origin" in _listed(read, "Vary")


def test_one_origins_headers_are_never_served_to_another_from_the_cache(cors, api, patient, token, limit):
    """The cache keeps data, never a response: each answer's CORS headers are its own request's."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    path = f"/fhir/Patient/{patient.pk}"
    assert api.get(path, HTTP_ORIGIN=ALLOWED, **auth)["Access-Control-Allow-Origin"] == ALLOWED  # fills the cache
    for origin in (OTHER, None):
        extra = {"HTTP_ORIGIN": origin} if origin else {}
        again = api.get(path, **extra, **auth)
        assert again.status_code == 200 and not _cors_headers(again), origin
        assert "origin" in _listed(again, "Vary")
    assert api.get(path, HTTP_ORIGIN=ALLOWED, **auth)["Access-Control-Allow-Origin"] == ALLOWED


def test_every_refusal_carries_the_headers_so_the_app_can_read_why(cors, api, patient, token, issue_token, limit):
    bearer = f"Bearer {token}"
    refusals = [
        (401, "/fhir/Patient?family=Okafor", {}),  # no token: an OperationOutcome
        (401, "/api/v1/whoami/", {"HTTP_AUTHORIZATION": "Bearer cpk_00000000_wrong"}),  # WWW-Authenticate
        (403, f"/fhir/Patient/{patient.pk}", {"HTTP_AUTHORIZATION": f"Bearer {issue_token('clinical:read')}"}),
        (400, "/fhir/Patient?birthdate=not-a-date", {"HTTP_AUTHORIZATION": bearer}),
        (400, "/fhir/Patient?family=%00", {"HTTP_AUTHORIZATION": bearer}),  # the NUL refusal, before any view
        (401, "/fhir/Patient?access_token=anything", {}),  # a token in the URL, before any view
        (404, "/api/v1/no-such-endpoint/", {"HTTP_AUTHORIZATION": bearer}),
    ]
    for status, path, extra in refusals:
        response = api.get(path, HTTP_ORIGIN=ALLOWED, **extra)
        assert response.status_code == status, (path, response.status_code, response.content[:300])
        assert response["Access-Control-Allow-Origin"] == ALLOWED, path
        assert "origin" in _listed(response, "Vary"), path
        if path.startswith("/fhir/"):
            assert response.json()["resourceType"] == "OperationOutcome", path

    RateLimitPolicy.objects.filter(scope="patient_data").update(requests=1)
    policy_cache._bump()
    limited = issue_token("patient:read", name="limited-app")
    statuses = [
        api.get("/fhir/Patient", {"family": "Okafor"}, HTTP_ORIGIN=ALLOWED, HTTP_AUTHORIZATION=f"Bearer {limited}")
        for _ in range(2)
    ]
    assert [r.status_code for r in statuses] == [200, 429]
    assert statuses[1]["Access-Control-Allow-Origin"] == ALLOWED and statuses[1]["Retry-After"]
    assert statuses[1].json()["resourceType"] == "OperationOutcome"


OTHER_PATHS = ["/admin/login/", "/dashboard/", "/metrics", "/healthz", "/api/schema/", "/api/docs/"]


@pytest.mark.parametrize("path", OTHER_PATHS)
def test_only_the_token_apis_answer_cross_origin(cors, client, path):
    response = client.get(path, HTTP_ORIGIN=ALLOWED)
    assert not _cors_headers(response) and "origin" not in _listed(response, "Vary"), path


@pytest.mark.parametrize("path", OTHER_PATHS[:-1])  # OPTIONS /api/docs/ is a 500 with or without CORS (reported)
def test_only_the_token_apis_answer_a_preflight(cors, client, path):
    assert not _cors_headers(_preflight(client, path)), path


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("*", "would let any page read patient data"),
        (f"{ALLOWED}, https://ehr.hospital.example/app/", "has a path"),
        (f"{ALLOWED}, https://ehr.hospital.example:08443", "'https://ehr.hospital.example:08443' is not spelled"),
        ("https://ehr.hospital.example:08443", "write 'https://ehr.hospital.example:8443'"),
    ],
)
def test_a_malformed_origin_stops_start_up_in_one_line(tmp_path, value, said):
    result = manage("check", env=embedded_env(tmp_path, CORS_ALLOWED_ORIGINS=value))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("Configuration error: The environment variable CORS_ALLOWED_ORIGINS"), lines[0]
    assert said in lines[0]


@pytest.mark.parametrize(
    ("origin", "said"),
    [
        ("null", "would let any page"),
        ("ehr.hospital.example", "is not an origin"),
        ("ftp://ehr.hospital.example", "is not an origin"),
        ("https://ehr.hospital.example/", "has a path"),
        ("https://ehr.hospital.example?x=1", "has a path"),
        ("https://user:pw@ehr.hospital.example", "user name or password"),
        ("http://ehr.hospital.example", "plain HTTP"),
        ("https://ehr.hospital.example:443", "scheme's own port"),
        ("https://EHR.hospital.example", "capitals"),
        ("https://bücher.example", "punycode"),
        ("https://ehr.hospital.example:99999", "is not an origin"),
        # django-cors-headers compares the Origin header's text: these would match no browser's request.
        ("https://ehr.hospital.example:08443", "write 'https://ehr.hospital.example:8443'"),
        ("https://ehr.hospital.example:", "write 'https://ehr.hospital.example'"),
        ("https://ehr.hospital.example:0", "port must be 1-65535"),
        ("https://%65hr.hospital.example", "write 'https://ehr.hospital.example'"),
        ("https://ehr.hospital.example:0443", "write 'https://ehr.hospital.example'"),
        ("http://[::1]:03000", "write 'http://[::1]:3000'"),
    ],
)
def test_an_origin_a_browser_never_sends_is_refused(origin, said):
    assert said in (origin_problem(origin) or ""), origin


@pytest.mark.parametrize(
    "origin", [ALLOWED, "https://ehr.hospital.example:8443", "http://localhost:5173", "http://127.0.0.1:9200",
               "http://[::1]:3000", "https://xn--bcher-kva.example"],
)  # fmt: skip
def test_an_exact_origin_is_taken(origin):
    assert origin_problem(origin) is None


class _OriginPage(BaseHTTPRequestHandler):
    """A clinicians' app's page: the browser's origin for its fetches."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>ward app</title><p>ward app</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


@contextmanager
def _origin_server(taken: set[int]) -> Iterator[str]:
    """A page server on a free port of ORIGIN_PORTS; yields its origin."""
    for port in random.sample(list(ORIGIN_PORTS), len(ORIGIN_PORTS)):
        if port in taken:
            continue
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), _OriginPage)
        except OSError:
            continue
        break
    else:
        raise AssertionError(f"no free port in {ORIGIN_PORTS}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


FETCH_JS = """
async ({ url, token }) => {
  try {
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/fhir+json", "X-Purpose-Of-Use": "TREAT" },
    });
    const body = await response.json();
    return { ok: true, status: response.status, family: body.entry?.[0]?.resource?.name?.[0]?.family ?? null,
             entries: (body.entry || []).length, remaining: response.headers.get("RateLimit-Remaining") };
  } catch (error) {
    return { ok: false, error: String(error) };
  }
}
"""


@pytest.mark.skipif(sys.platform != "linux", reason="POSIX process groups")
@pytest.mark.django_db(transaction=True)
def test_a_browser_app_on_an_allowed_origin_reads_patients_and_another_origin_cannot(tmp_path, patient, token, limit):
    from playwright.sync_api import sync_playwright

    reads = AuditEvent.objects.filter(resource_type="Patient")  # queried after Playwright's event loop has ended
    assert not reads.exists()
    with _origin_server(set()) as allowed, _origin_server({int(allowed.rsplit(":", 1)[1])}) as other:
        env = {**os.environ, "DATABASE_URL": database_url(), "CORS_ALLOWED_ORIGINS": allowed}
        with product_gunicorn(tmp_path / "gunicorn.log", env) as port, sync_playwright() as playwright:
            search = f"http://127.0.0.1:{port}/fhir/Patient?family=Okafor"
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{allowed}/")
                read = page.evaluate(FETCH_JS, {"url": search, "token": token})
                page.goto(f"{other}/")
                refused = page.evaluate(FETCH_JS, {"url": search, "token": token})
            finally:
                browser.close()
    assert read == {"ok": True, "status": 200, "family": "Okafor", "entries": 1, "remaining": str(limit - 1)}, read
    assert refused["ok"] is False and "Failed to fetch" in refused["error"], refused
    wait_for(reads.exists, 30, "the search's audit record")
    assert list(reads.values_list("action", "outcome")) == [("search", "success")]  # none from the other origin


@pytest.mark.parametrize("query", [b"a=1", b"a=\xff"], ids=["utf-8", "not-utf-8"])
def test_an_over_long_chunked_body_is_a_413_whatever_its_query_string_on_the_asgi_server(cors, query):
    """The live process's chunked-body guard built a Django request for the CORS headers of its 413, and building
    one decodes the query string: raw bytes that are not UTF-8 (as an ASGI server may pass them) raised there
    instead of the 413. The application behind the guard is never reached."""
    import asyncio

    from apps.core.chunked import AsgiChunkedBodyLength, chunked_body_limit

    async def never_reached(scope, receive, send):
        raise AssertionError("an over-long body reached the application")

    limit = chunked_body_limit()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/v1/patients/window/", "raw_path": b"/api/v1/patients/window/", "root_path": "",
        "query_string": query, "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80),
        "headers": [(b"host", b"127.0.0.1"), (b"origin", ALLOWED.encode()), (b"transfer-encoding", b"chunked")],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": b"x" * (limit + 1), "more_body": False}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(AsgiChunkedBodyLength(never_reached)(scope, receive, send))
    start = next(message for message in sent if message["type"] == "http.response.start")
    assert start["status"] == 413
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    if query == b"a=1":  # an allowed origin's 413 carries its CORS headers, as any other answer
        assert headers["access-control-allow-origin"] == ALLOWED
