"""A request body sent `Transfer-Encoding: chunked` (a client streaming its body) is read like any other.
Gunicorn de-chunks it but sets no Content-Length, and Django reads a body only as far as that says: a filtered
search posted chunked lost its filters and answered every patient (names, MRNs and birth dates the client
never asked for). The real api (gunicorn) and live (uvicorn) processes, a real PostgreSQL.

A body past the limit is refused (413) before Django runs, so django-cors-headers never saw that answer: it carries
the CORS headers of an allowed origin itself, else a browser app saw an opaque network error instead of the 413."""

import json
import os
import socket
import sys
from datetime import date

import pytest

from apps.accounts import scopes
from apps.accounts.services import api_client_create
from apps.clinical.services import patient_create
from apps.core.chunked import chunked_body_limit
from tests.helpers import database_url, product_gunicorn, product_uvicorn

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="POSIX process groups"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(params=[product_gunicorn, product_uvicorn], ids=["api (gunicorn)", "live (uvicorn)"])
def server_port(request, tmp_path):
    """Both processes: under `make run` the live process's port serves the whole API too."""
    with request.param(tmp_path / "server.log", {**os.environ, "DATABASE_URL": database_url()}) as port:
        yield port


ALLOWED = "https://ehr.hospital.example"
OTHER = "https://elsewhere.example"


@pytest.fixture(params=[product_gunicorn, product_uvicorn], ids=["api (gunicorn)", "live (uvicorn)"])
def cors_server_port(request, tmp_path):
    """Both processes, with CORS_ALLOWED_ORIGINS set (the CORS middleware installed)."""
    env = {**os.environ, "DATABASE_URL": database_url(), "CORS_ALLOWED_ORIGINS": ALLOWED}
    with request.param(tmp_path / "server.log", env) as port:
        yield port


@pytest.fixture
def token():
    for mrn, family in [("CHUNK-1", "Quistorp"), ("CHUNK-2", "Abernathy")]:
        patient_create(mrn=mrn, family_name=family, given_name="Ada", birth_date=date(1970, 1, 2))
    return api_client_create(name="chunked", scopes=[scopes.PATIENT_READ]).token


def _chunked_post(port: int, path: str, token: str, content_type: str, body: bytes) -> tuple[int, bytes]:
    """POST `body` in chunks of 7 bytes, as a streaming client sends it, and read the whole answer."""
    status, _, payload = _chunked_exchange(port, path, token, content_type, body)
    return status, payload


def _chunked_exchange(
    port: int, path: str, token: str, content_type: str, body: bytes, origin: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """_chunked_post, sent from `origin`'s page if given; the answer's headers too (lower-case names)."""
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7))
    sent_from = f"Origin: {origin}\r\n" if origin else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n{sent_from}"
        f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(head.encode() + chunks + b"0\r\n\r\n")
        answer = b""
        while part := connection.recv(65536):
            answer += part
    status_line, _, rest = answer.partition(b"\r\n")
    head_lines, _, payload = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in head_lines.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    return int(status_line.split()[1]), headers, payload


def _dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2 :]


def test_a_chunked_json_search_keeps_its_filters(server_port, token):
    status, payload = _chunked_post(
        server_port, "/api/v1/patients/window/", token, "application/json", json.dumps({"family": "Quistorp"}).encode()
    )
    assert status == 200, payload
    body = json.loads(payload)
    assert body["count"] == 1
    assert [row["mrn"] for row in body["results"]] == ["CHUNK-1"]


def test_a_chunked_fhir_search_keeps_its_filters(server_port, token):
    status, payload = _chunked_post(
        server_port, "/fhir/Patient/_search", token, "application/x-www-form-urlencoded", b"family=Quistorp"
    )
    assert status == 200, payload
    bundle = json.loads(payload)
    assert [entry["resource"]["name"][0]["family"] for entry in bundle["entry"]] == ["Quistorp"]


def test_a_chunked_body_over_the_limit_is_refused(server_port, token):
    body = json.dumps({"family": "Q" * chunked_body_limit()}).encode()
    status, payload = _chunked_post(server_port, "/api/v1/patients/window/", token, "application/json", body)
    assert status == 413
    assert json.loads(payload)["code"] == "request_too_large"


def test_a_chunked_body_over_the_limit_is_refused_with_the_cors_headers_of_an_allowed_origin(cors_server_port, token):
    body = json.dumps({"family": "Q" * chunked_body_limit()}).encode()
    status, headers, payload = _chunked_exchange(
        cors_server_port, "/api/v1/patients/window/", token, "application/json", body, origin=ALLOWED
    )
    assert status == 413 and json.loads(payload)["code"] == "request_too_large"
    assert headers.get("access-control-allow-origin") == ALLOWED, headers
    assert "origin" in headers.get("vary", "").lower(), headers

    status, headers, _ = _chunked_exchange(
        cors_server_port, "/api/v1/patients/window/", token, "application/json", body, origin=OTHER
    )
    assert status == 413
    assert not any(name.startswith("access-control-") for name in headers), headers
