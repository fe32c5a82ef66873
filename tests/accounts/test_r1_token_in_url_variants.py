"""Our token in a URL is refused (401 `token_in_url`) however it is glued or encoded, and in the path too:
`?x=Bearercpk_<token>` and `?q=abccpk_<token>` passed (the shape had to start a word), a token percent-encoded
three times passed (two decodings only), and `/api/v1/<token>/` answered the DEBUG 404 page echoing it."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.test import Client

from apps.accounts.middleware import token_in_query

pytestmark = pytest.mark.django_db


def _encoded(text: str, times: int) -> str:
    for _ in range(times):
        text = "".join(f"%{ord(char):02X}" if char != "%" else "%25" for char in text)
    return text


@pytest.mark.parametrize(
    "query",
    ["x=Bearercpk_{token}", "q=abccpk_{token}", "q=1{token}", "q={triple}", "q={twice}", "q=zz{triple}"],
)
@pytest.mark.parametrize("path", ["/healthz", "/api/v1/", "/fhir/metadata"])
def test_a_glued_or_thrice_encoded_token_in_the_query_is_refused(issue_token, query, path):
    token = issue_token("patient:read")
    query = query.format(token=token.removeprefix("cpk_") if "cpk_{" in query else token,
                         triple=_encoded(token, 3), twice=_encoded(token, 2))  # fmt: skip
    response = Client().get(f"{path}?{query}")
    assert response.status_code == 401, (query[:40], response.status_code)
    assert token not in response.content.decode()


@pytest.mark.parametrize("template", ["/api/v1/{token}/", "/{token}", "/api/v1/x{token}y/", "/fhir/Patient/{token}"])
def test_a_token_in_the_path_is_refused_and_never_echoed(issue_token, template):
    token = issue_token("patient:read")
    response = Client().get(template.format(token=token))
    assert response.status_code == 401, response.status_code
    assert token not in response.content.decode()


def test_a_percent_encoded_token_in_the_path_is_refused(issue_token):
    token = issue_token("patient:read")
    response = Client().get("/api/v1/" + quote(_encoded(token, 1)) + "/")  # once more by the client, once by WSGI
    assert response.status_code == 401, response.status_code


@pytest.mark.parametrize(
    "text",
    [
        "/api/v1/services/cpk-gateway/",
        "/api/v1/services/xcpk_12345678_abcdefghijklmnopqrstuvwxyz/",
        "/api/v1/services/100%25/",
        "/dashboard/",
    ],
)
def test_paths_without_a_token_of_ours_are_not_refused(text):
    from apps.accounts.middleware import token_in_path  # here: the module's other tests run without it

    assert not token_in_path(text)


@pytest.mark.parametrize(
    "query",
    ["_search=xcpk_12345678_abcdefghijklmnopqrstuvwxyz", "cursor=cpk", "q=%2525252525", "q=" + "%25" * 200],
)
def test_query_strings_without_a_full_token_are_not_refused(query):
    assert not token_in_query(query)
