"""`seed_demo` is idempotent and prints credentials that work."""

import stat
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from apps.accounts.models import ApiClient
from apps.clinical.models import Observation, Patient
from apps.services.models import Service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _token(output: str) -> str:
    line = next(line for line in output.splitlines() if "Authorization: Bearer" in line)
    return line.split("Bearer ")[1].split("'")[0]


def _password(output: str) -> str:
    return output.split("password '")[1].split("'")[0]


def test_seed_twice_creates_once_and_prints_the_same_working_credentials(api, client, settings):
    first = _seed()
    second = _seed()

    assert Service.objects.count() == 6
    assert get_user_model().objects.filter(username="admin", is_superuser=True).count() == 1
    assert ApiClient.objects.filter(name="demo-clinical-app").count() == 1
    assert "(6 new)" in first and "(0 new)" in second
    assert _token(first) == _token(second)
    assert _password(first) == _password(second)

    login = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": _password(second)})
    assert login.status_code == 302 and login["Location"] == "/admin/"
    response = api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {_token(second)}")
    assert response.status_code == 200
    credentials = settings.VAR_DIR / "demo-credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600


def test_seed_keeps_admin_edits_to_demo_services():
    _seed()
    Service.objects.filter(slug="clinical-api").update(slo_p95_ms=150)
    _seed()
    assert Service.objects.get(slug="clinical-api").slo_p95_ms == 150


def test_seed_leaves_a_route_prefix_an_admin_gave_another_service():
    """A route is one service's: seeding stopped with a ValidationError when the demo service's prefix was
    taken (a first seed after an admin's own service). The demo service is not seeded beside it now (nor its
    plan or policy: tests/core/test_d_seed_demo_fhir.py)."""
    Service.objects.create(slug="ehr-gateway", name="EHR gateway", route_prefix="api/v1/patients/")
    output = _seed()
    assert "clinical-api: not seeded, its route prefix api/v1/patients/ is ehr-gateway's" in output
    assert not Service.objects.filter(slug="clinical-api").exists()
    assert Service.objects.get(slug="ehr-gateway").route_prefix == "api/v1/patients/"
    _seed()  # and again, still not seeded
    assert not Service.objects.filter(slug="clinical-api").exists()


def test_seed_tops_the_demo_patients_up_once():
    first = _seed("--patients", "6")
    assert "Loaded 6 patients" in first
    assert Patient.objects.count() == 6
    assert Observation.objects.filter(category="vital-signs").values("patient").distinct().count() == 6

    again = _seed("--patients", "6")  # `make run` again: the demo's patients are there
    assert "Patients: 6 (already loaded)" in again and "Loaded" not in again
    # A load stopped half-way (Ctrl-C) or a larger DEMO_PATIENTS: the next run adds only what is missing.
    more = _seed("--patients", "9")
    assert "Loaded 3 patients" in more
    assert Patient.objects.count() == 9
    assert sorted(Patient.objects.values_list("mrn", flat=True)) == [f"S001-{i:07d}" for i in range(9)]


def test_seed_fills_the_holes_a_stopped_two_process_load_leaves():
    """Its two loader processes each commit batches of their own half: stopped (Ctrl-C) with 0-1 and 4-5 of
    0-7 loaded, the next run resumed from the count (4), found 4-5 loaded and refused, and the demo stayed
    short for good. Each missing run of indexes is loaded now."""
    call_command("load_synthetic", "--patients", "2", "--days", "1", stdout=StringIO(), stderr=StringIO())
    call_command("load_synthetic", "--patients", "2", "--first-index", "4", "--days", "1", stdout=StringIO(),
                 stderr=StringIO())  # fmt: skip
    out = _seed("--patients", "8")
    assert "Loading 4 synthetic demo patients" in out and "not loaded" not in out
    assert sorted(Patient.objects.values_list("mrn", flat=True)) == [f"S001-{i:07d}" for i in range(8)]


def test_seed_refuses_a_negative_patient_count():
    with pytest.raises(CommandError, match="--patients"):
        _seed("--patients", "-1")
    assert not Patient.objects.exists()


def test_seed_refuses_more_patients_than_load_synthetic_takes_before_writing_anything():
    """DEMO_PATIENTS with a stray digit: the top-up walked every index, then load_synthetic refused the count and the
    seed ended with status 0, nothing loaded and the refusal printed as a note."""
    with pytest.raises(CommandError, match="--patients must be from 0 to 10,000,000"):
        _seed("--patients", "10000001")
    assert not Service.objects.exists()
    assert not Patient.objects.exists()


def test_a_credentials_file_left_truncated_does_not_stop_the_seed(api, settings):
    """A run stopped while writing the file left it empty or half-written, and every later run failed on it."""
    _seed()
    (settings.VAR_DIR / "demo-credentials.json").write_text('{"admin_password": "x')
    output = _seed()
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {_token(output)}").status_code == 200


def test_a_run_stopped_before_it_wrote_its_credentials_leaves_an_admin_the_next_run_can_print(
    client, settings, monkeypatch
):
    """Stopped after its commit and before its file write, the first run had created the admin with a random
    password nobody saw or kept: every later run printed "(unchanged ...)" for good."""
    from apps.core.management.commands import seed_demo

    class StoppedJson:
        loads = staticmethod(seed_demo.json.loads)

        @staticmethod
        def dump(*args, **kwargs):
            raise KeyboardInterrupt

        dumps = dump

    monkeypatch.setattr(seed_demo, "json", StoppedJson)
    with pytest.raises(KeyboardInterrupt):
        _seed()
    monkeypatch.undo()
    output = _seed()
    login = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": _password(output)})
    assert login.status_code == 302 and login["Location"] == "/admin/"
    assert list(settings.VAR_DIR.iterdir()) == [settings.VAR_DIR / "demo-credentials.json"]
