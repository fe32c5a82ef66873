"""Names differing only in case are one name, held by the database: the services' check (name__iexact) is a read,
so two creates at once of 'Ward-App' and 'ward-app' both passed it and both committed (929f76c). The upgrade
that adds the constraint renames the later of such rows stored before it instead of failing."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_create
from tests.helpers import behind_an_uncommitted_insert

TAKEN = {"name": ["An API client named 'ward-app' (in some case) already exists."]}


@pytest.mark.django_db(transaction=True)  # two sessions: each commits
def test_the_second_of_two_creates_at_once_differing_only_in_case_is_refused_on_the_field():
    other = behind_an_uncommitted_insert(lambda: api_client_create(name="Ward-App", scopes=["inference"]))
    with other, pytest.raises(ValidationError) as refused:
        api_client_create(name="ward-app", scopes=["inference"])
    assert refused.value.message_dict == TAKEN
    assert list(ApiClient.objects.filter(name__iexact="ward-app").values_list("name", flat=True)) == ["Ward-App"]
    with pytest.raises(ValidationError) as again:  # the same message as a create after the other committed
        api_client_create(name="ward-app", scopes=["inference"])
    assert again.value.message_dict == TAKEN


@pytest.mark.django_db
def test_the_database_refuses_a_name_differing_only_in_case_written_past_the_services():
    ApiClient.objects.create(name="Ward-App", token_prefix="cpk_a", token_hash="a" * 64, scopes=["inference"])
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiClient.objects.create(name="WARD-app", token_prefix="cpk_b", token_hash="b" * 64, scopes=["inference"])


@pytest.mark.django_db
def test_the_upgrade_renames_the_later_of_names_alike_in_case_and_notes_it(capsys):
    """Rows stored before the constraint (names kept as typed until 929f76c, or two creates at once) must not
    stop the upgrade: the first created keeps its name, each later one gets a new one and a note saying why."""
    before = [("accounts", "0002_scope_permission_benchmark")]
    after = [("accounts", "0003_apiclient_name_folded_unique")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    OldApiClient = executor.loader.project_state(before).apps.get_model("accounts", "ApiClient")
    made = {}
    for n, name in enumerate(["Ward-App", "ward-app", "WARD-APP", "pharmacy"]):
        made[name] = OldApiClient.objects.create(
            name=name, token_prefix=f"cpk_{n}", token_hash=str(n) * 64, scopes=["inference"], description="Ward 7."
        ).pk

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    names = dict(ApiClient.objects.values_list("pk", "name"))
    assert names == {
        made["Ward-App"]: "Ward-App",
        made["ward-app"]: f"ward-app (renamed, id {made['ward-app']})",
        made["WARD-APP"]: f"WARD-APP (renamed, id {made['WARD-APP']})",
        made["pharmacy"]: "pharmacy",
    }
    renamed = ApiClient.objects.get(pk=made["ward-app"])
    assert "from 'ward-app'" in renamed.description and "'Ward-App'" in renamed.description
    assert renamed.description.endswith("Ward 7.") and renamed.token_hash == "1" * 64  # its token still works
    assert ApiClient.objects.get(pk=made["Ward-App"]).description == "Ward 7."
    assert "renamed from 'ward-app'" in capsys.readouterr().out
    with pytest.raises(ValidationError):
        api_client_create(name="ward-APP", scopes=["inference"])
