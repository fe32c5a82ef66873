"""`manage.py optimize` printed the run's report (and, with --no-wait, its admin page) as a bare path, which names
no host: nothing a user could open from the terminal. It prints whole URLs, on CONTROLPLANE_URL (the address
seed_demo's links use), make run's address when that is unset."""

from urllib.parse import urlsplit

import pytest

from tests.optimizer.support import optimize

pytestmark = pytest.mark.django_db


def test_the_report_is_printed_as_a_url_on_controlplane_url(monkeypatch, admin_client):
    monkeypatch.setenv("CONTROLPLANE_URL", "https://cp.example.org")
    run, output, _ = optimize("caching", "--inline")
    url = f"https://cp.example.org/optimizer/runs/{run.pk}/report/"
    assert f"Optimization run #{run.pk} {run.status}; report at {url}" in output
    assert admin_client.get(urlsplit(url).path).status_code == 200  # the page it names is there


def test_no_wait_names_the_runs_admin_page_on_make_runs_address(monkeypatch, admin_client):
    """Sent on the commit, which this test's transaction never makes: nothing reaches the broker."""
    monkeypatch.delenv("CONTROLPLANE_URL", raising=False)
    run, output, code = optimize("caching", "--no-wait")
    url = f"http://127.0.0.1:8000/admin/optimizer/optimizationrun/{run.pk}/change/"
    assert code == 0 and f"Sent to the workers; follow it at {url}" in output
    assert admin_client.get(urlsplit(url).path).status_code == 200
