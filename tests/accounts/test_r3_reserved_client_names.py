"""A client named like a request-rollup label for callers that are not clients (`user:1`, "anonymous",
"session", "unrecognised client") had its traffic counted and shown together with theirs: such names are
refused, in any case."""

import pytest
from django.core.exceptions import ValidationError

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_create, validate_client_name

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "name", ["user:1", "USER:42", "anonymous", "Anonymous", "session", "SESSION", "unrecognised client",
             "Unrecognised Client", " user:7 "],
)  # fmt: skip
def test_a_rollup_label_is_refused_as_a_client_name(name):
    with pytest.raises(ValidationError) as refused:
        api_client_create(name=name, scopes=["inference"])
    assert "reserved" in str(refused.value.message_dict["name"])
    assert not ApiClient.objects.exists()


@pytest.mark.parametrize("name", ["user:alice", "user-1", "user:1a", "anonymous-app", "session-viewer"])
def test_names_merely_like_a_label_are_accepted(name):
    assert validate_client_name(name) == name
