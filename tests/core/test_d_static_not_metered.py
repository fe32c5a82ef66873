"""Static files (WhiteNoise's answers, 304s included) are not counted as API traffic by the request timing
middleware: answered before any route, each was an "<unmatched>" request, admin's files alone ~1,164 a minute."""

import pytest

from apps.metrics.recorder import recorder

STATIC_FILE = "/static/admin/css/base.css"


@pytest.fixture
def recorded(monkeypatch) -> list[dict]:
    calls: list[dict] = []
    monkeypatch.setattr(recorder, "record", lambda **labels: calls.append(labels))
    return calls


def test_a_static_file_and_its_not_modified_answer_are_not_counted(client, recorded):
    served = client.get(STATIC_FILE)
    assert served.status_code == 200 and served["Last-Modified"]
    not_modified = client.get(STATIC_FILE, headers={"If-Modified-Since": served["Last-Modified"]})
    assert not_modified.status_code == 304
    assert recorded == []


def test_routed_requests_and_unmatched_ones_are_still_counted(client, recorded):
    assert client.get("/healthz").status_code == 200
    assert client.get("/static/no-such-file.css").status_code == 404  # no file: Django's 404, a request like any
    assert [(call["route"], call["status"]) for call in recorded] == [("healthz", 200), ("<unmatched>", 404)]
