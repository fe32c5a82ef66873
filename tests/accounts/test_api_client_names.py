"""A client's name is how people tell clients apart: in admin, in the commands and as the actor of every audit
record. Whitespace around it, invisible or control characters in it, another case or another Unicode form of
an existing name made two clients that read the same (and a name with a newline forged log lines); a name an
operator typed with a stray space was not found by revoke_api_client. And names of the benchmark runner's own
tokens (`benchmark-run-<run>-<attempt>`) were the runner's to revoke and to create: an application client so
named was revoked by that run's clean-up, and made the run fail on a taken name."""

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_create

pytestmark = pytest.mark.django_db


def _create(name: str, *args: str) -> str:
    out = StringIO()
    call_command("create_api_client", name, "--scopes", "inference", *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_surrounding_whitespace_is_dropped_and_the_commands_find_the_name_typed_with_it(api):
    token = _create("  ward-app\t")
    assert list(ApiClient.objects.values_list("name", flat=True)) == ["ward-app"]
    call_command("rotate_api_client", " ward-app ", stdout=StringIO())
    call_command("revoke_api_client", "ward-app ", stdout=StringIO())
    assert ApiClient.objects.get(name="ward-app").is_revoked
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


@pytest.mark.parametrize(
    "name",
    ["", "   ", "ward\u200bapp", "ward\napp", "ward\x1bapp", "ward-\u202eppa", "a\x00b", "ward\u2028app"],
    ids=["empty", "blank", "zero-width", "newline", "escape", "bidi-override", "nul", "line-separator"],
)
def test_a_blank_name_or_one_with_invisible_or_control_characters_is_refused(name):
    with pytest.raises(CommandError, match="name"):
        _create(name)
    assert not ApiClient.objects.exists()


@pytest.mark.parametrize(
    "lookalike",
    ["Ward-App", "WARD-APP", "\uff57\uff41\uff52\uff44-app", "ward  app"],
    ids=["case", "upper", "fullwidth", "spaces"],
)
def test_a_name_differing_only_in_case_or_unicode_form_is_taken(lookalike):
    _create("ward-app")
    _create("ward app")
    with pytest.raises(CommandError, match="already"):
        _create(lookalike)
    assert sorted(ApiClient.objects.values_list("name", flat=True)) == ["ward app", "ward-app"]


def test_the_service_refuses_them_too_and_names_the_field():
    api_client_create(name="ward-app", scopes=["inference"])
    for name in ("Ward-App", " ", "ward\u200bapp"):
        with pytest.raises(ValidationError) as refused:
            api_client_create(name=name, scopes=["inference"])
        assert "name" in refused.value.message_dict


def test_a_name_taken_by_a_concurrent_create_is_a_message_not_a_traceback(monkeypatch):
    """Two creates of one name at once both pass the uniqueness check; the second insert's IntegrityError
    was a traceback."""
    api_client_create(name="ward-app", scopes=["inference"])
    monkeypatch.setattr(ApiClient, "validate_unique", lambda self, exclude=None: None)
    monkeypatch.setattr("apps.accounts.services._name_taken", lambda name: False)  # both checked before either saved
    with pytest.raises(CommandError, match="name"):
        _create("ward-app")


def test_a_nul_in_the_description_is_a_message_not_a_database_error():
    with pytest.raises(CommandError, match="description"):
        _create("ward-app", "--description", "ward 7\x00")


def test_the_benchmark_runners_names_are_its_own():
    with pytest.raises(CommandError, match="benchmark runner"):
        _create("benchmark-run-9-1")
    with pytest.raises(CommandError, match="benchmark runner"):
        _create("Benchmark-Run-9-1")
    assert not ApiClient.objects.exists()
    api_client_create(name="benchmark-run-9-1", scopes=["inference", "benchmark"])  # the runner's own call


def test_a_name_in_another_case_is_suggested_never_acted_on():
    _create("ward-app")
    with pytest.raises(CommandError, match=r"No API client named 'Ward-App'\. Did you mean 'ward-app'\?"):
        call_command("revoke_api_client", "Ward-App", stdout=StringIO())
    assert not ApiClient.objects.get(name="ward-app").is_revoked
