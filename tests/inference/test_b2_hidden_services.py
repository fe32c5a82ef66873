"""A signed-in user calls only the deployments of the services open to them (and of none), as the overview and
admin show them: a hidden one answers as a missing one does, on either endpoint. A client's token is not tied to
services. No model is loaded: the other task's endpoint answers 400 for a deployment that is found."""

import pytest
from django.contrib.auth.models import Group, Permission

from apps.accounts.roles import OPERATORS
from apps.services.services import service_create
from tests.inference.support import deployment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_let_go_of_test_models")]  # the old code loaded it

EMBED, GENERATE = "/api/v1/inference/{}/embed", "/api/v1/inference/{}/generate"


@pytest.fixture
def oncology():
    """`onco-embed` belongs to a service only the "Oncology AI" group sees; `open-embed` to no service."""
    group = Group.objects.create(name="Oncology AI")
    service = service_create(name="Oncology triage", slug="onco")
    service.visible_to.add(group)
    deployment("onco-embed", service=service)
    deployment("open-embed")
    return group


def _signed_in(api, staff, *groups: str):
    user = staff("op", OPERATORS, *groups)
    user.user_permissions.add(Permission.objects.get(codename="scope_inference"))
    api.force_login(user)
    return api


def test_a_deployment_of_a_hidden_service_answers_as_a_missing_one(api, staff, oncology):
    api = _signed_in(api, staff)
    assert [row["name"] for row in api.get("/api/v1/inference/deployments/").json()["results"]] == ["open-embed"]
    missing = api.post(EMBED.format("no-such"), {"inputs": ["fever"]}, format="json")
    assert missing.status_code == 404, missing.content
    hidden = api.post(EMBED.format("onco-embed"), {"inputs": ["fever"]}, format="json")
    assert (hidden.status_code, hidden.json()) == (404, missing.json())
    # The other task's endpoint does not tell it exists either.
    wrong = api.post(GENERATE.format("onco-embed"), {"prompt": "fever"}, format="json")
    assert (wrong.status_code, wrong.json()) == (404, missing.json())
    # A deployment of no service is everyone's: found (the 400 names its endpoint).
    unassigned = api.post(GENERATE.format("open-embed"), {"prompt": "fever"}, format="json")
    assert unassigned.status_code == 400 and "open-embed is an embedding deployment" in str(unassigned.json())


def test_the_services_group_and_a_token_reach_it(api, staff, oncology, issue_token):
    member = _signed_in(api, staff, "Oncology AI").post(GENERATE.format("onco-embed"), {"prompt": "fever"},
                                                        format="json")  # fmt: skip
    assert member.status_code == 400 and "onco-embed is an embedding deployment" in str(member.json())
    api.logout()
    token = issue_token("inference")
    client = api.post(GENERATE.format("onco-embed"), {"prompt": "fever"}, format="json",
                      HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert client.status_code == 400 and "onco-embed is an embedding deployment" in str(client.json())
