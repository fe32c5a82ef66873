"""Errors gunicorn answers itself, before Django (a request line or header it cannot parse, too long a request
line, too many header bytes), have the API's JSON error body, not gunicorn's HTML page, and quote nothing of the
request (a request line carries a FHIR identifier search's MRN). A real gunicorn on the product's config."""

import json
import os
import socket
import sys

import pytest

from tests.helpers import database_url, product_gunicorn

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX process groups")

MRN = "MRN-7719-XQ"


@pytest.fixture(scope="module")
def server_port(tmp_path_factory):
    log = tmp_path_factory.mktemp("gunicorn") / "server.log"
    with product_gunicorn(log, {**os.environ, "DATABASE_URL": database_url()}) as port:
        yield port


def _exchange(port: int, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(raw)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return status_line, headers, body


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (f"GET /fhir/Patient?identifier={MRN} HTTP/1.1 extra\r\nHost: x\r\n\r\n".encode(), 400, "bad_request"),
        (f"GET /fhir/Patient?identifier={MRN}&pad={'x' * 5000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414,
         "uri_too_long"),
        (f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {'x' * 20000}\r\n\r\n".encode(), 431,
         "request_header_fields_too_large"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"),
    ],
    ids=["bad request line", "long request line", "large header", "malformed header"],
)  # fmt: skip
def test_an_error_gunicorn_answers_itself_is_json_without_the_request(server_port, raw, status, code):
    status_line, headers, body = _exchange(server_port, raw)
    assert status_line.split(" ")[1] == str(status), status_line
    assert headers["content-type"] == "application/json"  # was text/html: gunicorn's own page
    assert int(headers["content-length"]) == len(body)
    answer = json.loads(body)
    assert answer["code"] == code and answer["detail"]
    assert MRN.encode() not in body
