"""Unused-index advice names only indexes a DBA can drop: the audit trail is partitioned by month, and an index
that enforces a constraint goes with its constraint."""

import pytest
from django.db import connection

from apps.optimizer.database import index_usage, recommendations_for

pytestmark = pytest.mark.django_db


def _sql(statement: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement)


def test_partition_indexes_count_under_their_parent_and_a_constraint_index_is_never_called_unused():
    """Each partition's index showed as its own row (audit_auditevent_y2026m12_patient_ids_idx ...): a month
    nobody queried had its index called unused and "drop it" advised, which PostgreSQL refuses (the partitioned
    index requires it), while the partitioned index itself was never judged. An exclusion constraint's index
    (not unique) was advised dropped too. Now partitions' scans and sizes add up under the partitioned index,
    and indexes backing a constraint are left out."""
    _sql("CREATE TABLE clinical_probe (id int, code text, at date) PARTITION BY RANGE (at)")
    _sql("CREATE TABLE clinical_probe_a PARTITION OF clinical_probe FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')")
    _sql("CREATE TABLE clinical_probe_b PARTITION OF clinical_probe FOR VALUES FROM ('2021-01-01') TO ('2022-01-01')")
    _sql("CREATE INDEX clinical_probe_code ON clinical_probe (code)")
    _sql("CREATE TABLE clinical_probe_room (id int, during tsrange, EXCLUDE USING gist (during WITH &&))")

    usage = {row["index"]: row for row in index_usage() if row["table"].startswith("clinical_probe")}
    assert set(usage) == {"clinical_probe_code", "clinical_probe_room_during_excl"}
    assert usage["clinical_probe_code"]["table"] == "clinical_probe"
    assert usage["clinical_probe_code"]["partitions"] == 2

    big = [{**row, "bytes": 9 * 1024 * 1024} for row in usage.values()]  # above the advice's 8 MiB floor
    drafts = recommendations_for({"missing_indexes": [], "table_scans": [], "index_usage": big})
    assert [draft.subject for draft in drafts] == ["clinical_probe_code"]
