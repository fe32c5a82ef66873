"""`manage.py scaling forecast|export|apply --service X` for a service whose policy cannot do it (none, disabled,
or not predictive for a forecast) did nothing, printed nothing (or "0 manifests written") and exited 0: a
script or a person read it as done. It is an error naming the service and why, before anything is done."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.scaling import services
from apps.services.models import Service

pytestmark = pytest.mark.django_db


def _service(slug: str, **policy) -> Service:
    service = Service.objects.create(name=slug, slug=slug, route_prefix=f"api/{slug}/")
    if policy:
        services.scaling_policy_ensure(service, history_source="synthetic", **policy)
    return service


def _run(*args: str) -> str:
    out = StringIO()
    call_command("scaling", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.parametrize(
    ("action", "extra"),
    [("forecast", []), ("export", ["--out", "OUT"]), ("apply", [])],
    ids=["forecast", "export", "apply"],
)
def test_a_named_service_without_an_enabled_policy_is_an_error(action, extra, tmp_path):
    _service("bare")
    _service("off", enabled=False)
    _service("fine", predictive=True)
    extra = [str(tmp_path) if arg == "OUT" else arg for arg in extra]
    with pytest.raises(CommandError, match=r"bare: no scaling policy; off: its scaling policy is disabled\."):
        _run(action, *extra, "--service", "fine", "--service", "bare", "--service", "off")
    assert list(tmp_path.iterdir()) == []
    assert not Service.objects.get(slug="fine").forecasts.exists()


def test_forecasting_a_named_service_whose_policy_is_not_predictive_is_an_error(tmp_path):
    _service("steady", predictive=False)
    with pytest.raises(CommandError, match=r"steady: its scaling policy is not predictive\."):
        _run("forecast", "--service", "steady")
    assert "5 manifests written" in _run("export", "--out", str(tmp_path), "--service", "steady")
