"""A bearer token of ours in any URL's query string is refused (401 `token_in_url`) on every path, not only on
the DRF views BearerTokenAuthentication guards: the API root, the docs and schema, FHIR's metadata, /metrics and
the probes answered 200 (or an unrelated 400) and left the live token in the access log."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.middleware import token_in_query

pytestmark = pytest.mark.django_db

PATHS = [
    "/api/v1/",
    "/api/docs/",
    "/api/schema/",
    "/fhir/metadata",
    "/metrics",
    "/readyz",
    "/healthz",
    "/admin/login/",
    "/dashboard/",
    "/no/such/path/",
]


def _token_code(response) -> str | None:
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":  # FHIR: the code in the issue's details
        return body["issue"][0]["details"]["coding"][0]["code"]
    return body.get("code")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("query", ["access_token={token}", "x=1&key={token}", "Authorization=Bearer+{token}"])
def test_a_token_in_the_query_string_is_refused_on_every_path(issue_token, path, query):
    token = issue_token("patient:read")
    response = Client().get(f"{path}?{query.format(token=token)}")
    assert response.status_code == 401, (path, response.status_code)
    assert _token_code(response) == "token_in_url"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/api/v1/", "/fhir/metadata", "/metrics", "/readyz"])
def test_a_token_in_the_url_of_a_post_with_a_valid_header_is_refused_too(issue_token, path):
    token = issue_token("patient:read")
    response = Client().post(f"{path}?token={token}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert _token_code(response) == "token_in_url"


@pytest.mark.parametrize(
    "query",
    [
        "access_token=anything",  # RFC 6750's parameter: whatever it carries is meant as a bearer token
        "api_key=cpk_1234abcd",  # ours cut short, under a credential's name
        "token=Bearer%20cpk_1234abcd_",
        "q=1&ApiKey=cpk_deadbeef",
        "key={token_twice_encoded}",  # percent-encoded twice
    ],
)
def test_credential_parameters_carrying_one_of_ours_are_refused(issue_token, query):
    token = issue_token("patient:read")
    twice = token.replace("_", "%255F")
    response = Client().get("/healthz?" + query.format(token_twice_encoded=twice))
    assert response.status_code == 401
    assert response.json()["code"] == "token_in_url"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "format=json",
        "_search=xcpk_12345678_abcdefghijklmnopqrstuvwxyz",  # the prefix inside another word
        "cursor=cpk",
        "name=token&key=value",
    ],
)
def test_query_strings_without_a_token_of_ours_are_served(query):
    assert not token_in_query(query)
    response = Client().get("/healthz" + (f"?{query}" if query else ""))
    assert response.status_code == 200
