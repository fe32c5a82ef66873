"""What the API, the admin and the dashboard call a deployment's serving mode is the mode this process (host)
answers in, with the reason where that is not the mode configured or measured: after `auto` fell back to fp32
(its measured nf4 cannot run on this CPU host) they still showed nf4, and after an edit failed to load, the
mode of the edit. Real MiniLM; nf4 fails for real here."""

import pytest

from apps.inference import serving
from apps.inference.models import ModelDeployment
from tests.inference.support import LoadFailingIn, deployment, edit, embed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_let_go_of_test_models")]

URL = "/api/v1/inference/deployments/"


def overview_row(api, name: str) -> dict:
    response = api.get(URL)
    assert response.status_code == 200, response.content[:300]
    return next(row for row in response.json()["results"] if row["name"] == name)


def measured_on_a_gpu(name: str) -> ModelDeployment:
    row = deployment(name, quantization="auto")
    ModelDeployment.objects.filter(pk=row.pk).update(chosen_quantization="nf4")
    return ModelDeployment.objects.get(pk=row.pk)


def test_the_overview_shows_the_fp32_that_auto_serves_where_its_measured_mode_cannot_run(staff_api, token):
    measured_on_a_gpu("auto-on-a-cpu")
    before = overview_row(staff_api, "auto-on-a-cpu")  # nothing loaded yet: the mode this host would load
    assert before["serving_quantization"] == "fp32" and before["chosen_quantization"] == "nf4"
    assert before["serving_reason"].startswith("its measured nf4 cannot run here (")

    assert embed(staff_api, token, "auto-on-a-cpu").json()["quantization"] == "fp32"
    after = overview_row(staff_api, "auto-on-a-cpu")
    assert after["serving_quantization"] == "fp32" and after["serving_reason"] == before["serving_reason"]
    assert after["quantization"] == "auto" and after["load_failure"] is None


def test_a_mode_served_as_asked_has_no_reason(staff_api, token):
    row = deployment("auto-int8", quantization="auto")
    ModelDeployment.objects.filter(pk=row.pk).update(chosen_quantization="int8")
    assert embed(staff_api, token, "auto-int8").status_code == 200
    shown = overview_row(staff_api, "auto-int8")
    assert (shown["serving_quantization"], shown["serving_reason"]) == ("int8", None)


def test_the_overview_shows_the_kept_model_and_the_failure_after_an_edit_fails_to_load(staff_api, token, monkeypatch):
    monkeypatch.setattr(serving, "load", LoadFailingIn("bf16", MemoryError("out of memory")))
    row = deployment("kept-fp32")
    assert embed(staff_api, token, "kept-fp32").status_code == 200
    edit(row, quantization="bf16")
    assert embed(staff_api, token, "kept-fp32").json()["quantization"] == "fp32"
    shown = overview_row(staff_api, "kept-fp32")
    assert shown["quantization"] == "bf16" and shown["serving_quantization"] == "fp32"
    assert (
        shown["serving_reason"] == "bf16 did not load: MemoryError: out of memory; the fp32 model loaded before answers"
    )
    assert "bf16 did not load" in shown["load_failure"] and shown["load_failed_at"]


def test_the_admin_shows_the_mode_serving_here_and_the_recorded_failure(client, django_user_model):
    measured_on_a_gpu("auto-in-admin")
    broken = deployment("broken-in-admin", quantization="nf4")
    with pytest.raises(serving.ModelUnavailable):
        serving.served(broken)
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-1"))
    for name, expected in (("auto-in-admin", "fp32: its measured nf4 cannot run here"),
                           ("broken-in-admin", "answering 503 deployment_unavailable")):  # fmt: skip
        pk = ModelDeployment.objects.get(name=name).pk
        page = client.get(f"/admin/inference/modeldeployment/{pk}/change/")
        assert page.status_code == 200
        assert expected in page.content.decode()
