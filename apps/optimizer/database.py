"""The database optimizer: EXPLAIN every query pattern of the data plane, read PostgreSQL's own
statistics, and recommend (or, with apply, create) the indexes the models define but the database lacks."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from django.conf import settings
from django.db import DatabaseError, Error, connection, connections, models, transaction

from apps.clinical.query_patterns import QUERY_PATTERNS, pick_sample
from apps.core.errors import error_line
from apps.optimizer.types import Draft

logger = logging.getLogger(__name__)

# A table is worth flagging for sequential scans only above this many rows.
SEQ_SCAN_ROWS = 10_000

# Ends every statement the optimizer's database step runs on PostgreSQL (its EXPLAIN ANALYZE probes, their
# timed executions, its catalog reads), so that pg_stat_statements findings leave them out: on a quiet
# database the slowest statements, and the advice drawn from them, were the optimizer's own measurements.
OWN_STATEMENT_TAG = "/* controlplane-optimizer */"


def _tag_statement(execute, sql, params, many, context):
    return execute(sql if sql.rstrip().endswith(OWN_STATEMENT_TAG) else f"{sql} {OWN_STATEMENT_TAG}", params, many,
                   context)  # fmt: skip


@contextlib.contextmanager
def own_statements_tagged() -> Iterator[None]:
    """Every statement this connection runs meanwhile carries OWN_STATEMENT_TAG (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.execute_wrapper(_tag_statement):
        yield


# Plan keys kept in a stored plan: shape, costs, timings, buffers and names. Every other key is dropped, since
# an expression (Index Cond, Filter, One-Time Filter, Function Call, Run Condition, a key PostgreSQL adds
# later ...) can quote the sample's values, an MRN among them.
_PLAN_KEYS = {
    "Node Type", "Parent Relationship", "Parallel Aware", "Async Capable", "Relation Name", "Schema", "Alias",
    "Index Name", "Scan Direction", "Join Type", "Strategy", "Partial Mode", "Inner Unique", "Command",
    "Startup Cost", "Total Cost", "Plan Rows", "Plan Width", "Actual Startup Time", "Actual Total Time",
    "Actual Rows", "Actual Loops", "Rows Removed by Filter", "Rows Removed by Index Recheck",
    "Rows Removed by Join Filter", "Heap Fetches", "Exact Heap Blocks", "Lossy Heap Blocks",
    "Shared Hit Blocks", "Shared Read Blocks", "Shared Dirtied Blocks", "Shared Written Blocks",
    "Local Hit Blocks", "Local Read Blocks", "Local Dirtied Blocks", "Local Written Blocks",
    "Temp Read Blocks", "Temp Written Blocks", "I/O Read Time", "I/O Write Time", "Sort Method",
    "Sort Space Used", "Sort Space Type", "Hash Buckets", "Original Hash Buckets", "Hash Batches",
    "Original Hash Batches", "Peak Memory Usage", "Workers Planned", "Workers Launched", "Single Copy",
    "Subplans Removed",
}  # fmt: skip


def redact_plan(node: dict) -> dict:
    """The plan's shape, costs, timings and index names, without any expression that holds values."""
    kept = {key: value for key, value in node.items() if key in _PLAN_KEYS}
    if "Plans" in node:
        kept["Plans"] = [redact_plan(child) for child in node["Plans"]]
    return kept


def _plan_nodes(node: dict) -> list[dict]:
    nodes = [node]
    for child in node.get("Plans", []):
        nodes.extend(_plan_nodes(child))
    return nodes


# Each pattern is also executed this many times through the ORM; the median is its wall time.
TIMED_EXECUTIONS = 5


def wall_ms(queryset) -> float:
    """Median wall time of fetching the queryset's rows from this process: what a request pays."""
    timings = []
    for _ in range(TIMED_EXECUTIONS):
        started = time.perf_counter()
        list(queryset.all())
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 3)


def explain_timeout_ms() -> int:
    """How long one execution of a pattern may take before the server stops it."""
    return round(settings.OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS * 1000)


@contextlib.contextmanager
def _read_only_rolled_back() -> Iterator[None]:
    """A PostgreSQL transaction (a savepoint inside one) in which nothing can be written, rolled back at the end,
    each statement stopped at explain_timeout_ms().

    EXPLAIN ANALYZE executes the statement, and so does timing it: a pattern whose SELECT calls a function that
    writes (nextval, a function with side effects, a data-modifying CTE) changed the live database six times a run.
    Read-only refuses the write; the rollback undoes whatever read-only lets through (a sequence is not one).
    Not for SQLite: see explain_patterns."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL transaction_read_only = on")
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{explain_timeout_ms()}ms"])
        yield
        transaction.set_rollback(True)


def _timed_out(error: DatabaseError) -> bool:
    import psycopg

    return isinstance(error.__cause__, psycopg.errors.QueryCanceled)


def _postgresql_plan(cursor, sql: str, params, *, analyze: bool) -> tuple[dict, list[str], list[str]]:
    """(the plan, indexes it reads, tables it reads whole)."""
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    cursor.execute(f"EXPLAIN ({options}) {sql}", params)
    raw = cursor.fetchone()[0]
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    nodes = _plan_nodes(plan["Plan"])
    indexes = sorted({n["Index Name"] for n in nodes if "Index Name" in n})
    seq_scans = sorted({n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"})
    return plan, indexes, seq_scans


def _explain_postgresql(pattern, queryset, sql: str, params) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) and the timed executions; a pattern that outruns the statement timeout is
    reported as timed out with its estimated plan (EXPLAIN without ANALYZE executes nothing)."""
    row = {
        "pattern": pattern.name,
        "description": pattern.description,
        "expected_index": pattern.expected_index[1] if pattern.expected_index else None,
    }
    try:
        with _read_only_rolled_back(), connection.cursor() as cursor:
            plan, indexes, seq_scans = _postgresql_plan(cursor, sql, params, analyze=True)
            return {
                **row,
                "execution_ms": round(plan["Execution Time"], 3),
                "wall_ms": wall_ms(queryset),
                "planning_ms": round(plan["Planning Time"], 3),
                "indexes_used": indexes,
                "seq_scans": seq_scans,
                "shared_hit": plan["Plan"].get("Shared Hit Blocks", 0),
                "shared_read": plan["Plan"].get("Shared Read Blocks", 0),
                "plan": redact_plan(plan["Plan"]),
            }
    except DatabaseError as exc:
        if not _timed_out(exc):
            raise
    logger.warning("query pattern %s ran past the %s ms statement timeout", pattern.name, explain_timeout_ms())
    with _read_only_rolled_back(), connection.cursor() as cursor:
        plan, indexes, seq_scans = _postgresql_plan(cursor, sql, params, analyze=False)
    return {
        **row,
        "timed_out_ms": explain_timeout_ms(),
        "execution_ms": None,
        "indexes_used": indexes,
        "seq_scans": seq_scans,
        "plan": redact_plan(plan["Plan"]),
    }


def explain_patterns(progress: Callable[[float, str], None] = lambda fraction, message: None) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) each pattern with a real sample (SQLite: EXPLAIN QUERY PLAN), and time
    its real execution on every database; on PostgreSQL each pattern in a read-only transaction that is rolled
    back. `progress` hears the share of patterns done before each."""
    sample = pick_sample()
    if sample is None:
        return []
    results = []
    for done, pattern in enumerate(QUERY_PATTERNS):
        progress(done / len(QUERY_PATTERNS), f"explain {pattern.name}")
        queryset = pattern.build(sample)
        sql, params = queryset.query.sql_with_params()
        if connection.vendor == "postgresql":
            results.append(_explain_postgresql(pattern, queryset, sql, params))
            continue
        # In autocommit: a transaction on SQLite (transaction_mode IMMEDIATE) takes the database's one write lock
        # for the whole measurement, and every other process's write waited out its busy timeout and failed with
        # "database is locked". A SELECT there cannot write, and SQLite has no read-only transaction to ask for.
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            # EXPLAIN QUERY PLAN names tables and indexes, never the bound values.
            details = [row[-1] for row in cursor.fetchall()]
            indexes, seq_scans = sqlite_plan_summary(details)
            results.append(
                {
                    "pattern": pattern.name,
                    "description": pattern.description,
                    "wall_ms": wall_ms(queryset),
                    "indexes_used": indexes,
                    "seq_scans": seq_scans,
                    "expected_index": pattern.expected_index[1] if pattern.expected_index else None,
                    "plan": details,
                }
            )
    return results


_SQLITE_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\S+)")
_SQLITE_TABLE_SCAN = re.compile(r"SCAN (\S+)$")


def sqlite_plan_summary(details: list[str]) -> tuple[list[str], list[str]]:
    """(indexes used, tables read whole) from SQLite's EXPLAIN QUERY PLAN lines, named as PostgreSQL's
    are (the lines themselves, "SEARCH t USING INDEX i (a=?)", went into the report as index names)."""
    indexes, tables = set(), set()
    for detail in details:
        if index := _SQLITE_INDEX.search(detail):
            indexes.add(index.group(1))
        elif "USING INTEGER PRIMARY KEY" in detail:
            indexes.add(f"{detail.split()[1]} (rowid)")
        elif table := _SQLITE_TABLE_SCAN.match(detail):
            tables.add(table.group(1))
    return sorted(indexes), sorted(tables)


def designed_indexes() -> dict[str, tuple[type, models.Index]]:
    """Index name -> (model, index) for every index the data plane's models declare."""
    from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient

    return {index.name: (model, index) for model in (Patient, Encounter, Observation, MedicationRequest)
            for index in model._meta.indexes}  # fmt: skip


def designed_index_sql(name: str) -> str:
    """The CREATE INDEX CONCURRENTLY statement of a designed index, from the model's current definition.

    Applying never runs SQL stored in a recommendation: a row is not code, and a proposal made before an
    upgrade would build the old definition under the new name."""
    designed = designed_indexes()
    if name not in designed:
        raise ValueError(f"{name!r} is not an index the data plane's models declare.")
    model, index = designed[name]
    with connection.schema_editor(collect_sql=True) as editor:
        if connection.vendor != "postgresql":  # SQLite builds in its one writer's transaction anyway
            return str(index.create_sql(model, editor))
        return str(index.create_sql(model, editor, concurrently=True))


# Whether some session is building index i (pg_index) now. pg_stat_progress_create_index shows another
# role's build to a role without pg_read_all_stats as its pid alone (relid, index_relid and phase NULL): a
# migration running as another role looked like an invalid leftover, and applying dropped it. Such a row
# counts where its backend holds the build's ShareUpdateExclusiveLock on the index's table (pg_locks is
# readable by every role; the lock is held, as a session lock, from the build's start to its end).
# A build's report and that lock end before its last transaction commits the index valid: till then the
# pg_index row's xmax is that transaction, whose id it holds a lock on. Without this, two looks 0.5 s apart
# took a build whose commit came later (a loaded host) for a leftover: the index it had just built was
# dropped and built again. The progress view is the cluster's: another database's build is not this one's.
_BUILDING = """
(EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
         WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND (p.index_relid = i.indexrelid
                OR (p.relid IS NULL
                    AND EXISTS (SELECT 1 FROM pg_locks l
                                WHERE l.pid = p.pid AND l.locktype = 'relation' AND l.database = p.datid
                                  AND l.relation = i.indrelid AND l.mode = 'ShareUpdateExclusiveLock'
                                  AND l.granted))))
 OR EXISTS (SELECT 1 FROM pg_locks x WHERE x.locktype = 'transactionid' AND x.transactionid = i.xmax AND x.granted))
"""

_CATALOG = f"""
SELECT c.relname, t.relname, i.indisvalid, i.indisunique, am.amname, i.indnkeyatts,
       (SELECT array_agg(coalesce(a.attname, '') ORDER BY k.n)
          FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
          LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum),
       (SELECT array_agg((o.opt & 1) = 1 ORDER BY o.n) FROM unnest(i.indoption::int2[]) WITH ORDINALITY o(opt, n)),
       (SELECT array_agg(CASE WHEN oc.opcdefault THEN '' ELSE oc.opcname END ORDER BY q.n)
          FROM unnest(i.indclass::oid[]) WITH ORDINALITY q(cls, n) JOIN pg_opclass oc ON oc.oid = q.cls),
       pg_get_expr(i.indpred, i.indrelid), i.indexprs IS NOT NULL,
       {_BUILDING.strip()}
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
     JOIN pg_am am ON am.oid = c.relam
WHERE c.relnamespace = current_schema()::regnamespace
"""  # noqa: S608 - a constant fragment, no input


def index_catalog(cursor) -> dict[str, dict]:
    """Every index of this schema as PostgreSQL has it: validity, whether a build is in progress, its
    access method, key columns with their direction and operator class, INCLUDE columns and predicate."""
    cursor.execute(_CATALOG)
    catalog = {}
    for (
        name,
        table,
        valid,
        unique,
        method,
        nkey,
        columns,
        descending,
        opclasses,
        predicate,
        expr,
        building,
    ) in cursor.fetchall():
        catalog[name] = {
            "index": name,
            "table": table,
            "valid": valid,
            "unique": unique,
            "method": method,
            "keys": list(zip(columns[:nkey], descending or [], opclasses or [], strict=False)),
            "include": list(columns[nkey:]),
            "predicate": predicate,
            "expressions": expr,
            "building": building,
        }
    return catalog


def _normalized_predicate(sql: str | None) -> str | None:
    """A predicate's text as both Django and pg_get_expr spell it: no quotes, casts, parentheses or spaces."""
    if not sql:
        return None
    sql = re.sub(r"::[a-z_]+(?: [a-z_]+)*(?:\[\])?", "", sql.lower())
    sql = re.sub(r'[\s"()]', "", sql)
    return re.sub(r"(\w+)=true\b", r"\1", re.sub(r"(\w+)=false\b", r"not\1", sql))


def _designed_shape(model, index, statement: str) -> dict | None:
    """The designed index in the catalog's terms, or None where it cannot be compared (expressions)."""
    if index.expressions:
        return None
    opclasses = list(index.opclasses) or [""] * len(index.fields)
    keys = []
    for field_name, opclass in zip(index.fields, opclasses, strict=True):
        descending = field_name.startswith("-")
        keys.append((model._meta.get_field(field_name.lstrip("-")).column, descending, opclass))
    predicate = statement.split(" WHERE ", 1)[1] if " WHERE " in statement else None
    return {
        "method": "btree" if type(index) is models.Index else index.suffix,
        "keys": keys,
        "include": [model._meta.get_field(name).column for name in index.include],
        "predicate": _normalized_predicate(predicate),
    }


def covering_index(designed: dict, candidates: list[dict]) -> str | None:
    """An existing valid index that already answers what the designed one would: same table and access
    method, the designed key columns as its leading columns (same operator classes; same directions, or
    all reversed, which a btree scans backwards), the designed INCLUDE columns among its columns, and the
    same predicate. Creating the designed index beside it would only cost writes and disk."""
    keys = designed["keys"]
    for candidate in candidates:
        if not candidate["valid"] or candidate["expressions"] or candidate["method"] != designed["method"]:
            continue
        if _normalized_predicate(candidate["predicate"]) != designed["predicate"]:
            continue
        leading = candidate["keys"][: len(keys)]
        if len(leading) < len(keys):
            continue
        if [(column, opclass) for column, _, opclass in leading] != [(column, opclass) for column, _, opclass in keys]:
            continue
        flips = {
            candidate_desc != designed_desc
            for (_, candidate_desc, _), (_, designed_desc, _) in zip(leading, keys, strict=True)
        }
        if len(flips) > 1 or (flips == {True} and designed["method"] != "btree"):
            continue
        columns = {column for column, _, _ in candidate["keys"]} | set(candidate["include"])
        if set(designed["include"]) <= columns:
            return candidate["index"]
    return None


def missing_indexes() -> list[dict]:
    """Designed indexes the database lacks in working order: absent (dropped, never created) or INVALID
    (left by an interrupted concurrent build: never read, still written). Not listed: one another session
    is building right now, and one an existing index under another name already covers (`index_states`
    says which)."""
    return [state for state in index_states() if state["state"] in ("missing", "invalid")]


def index_states() -> list[dict]:
    """Every designed index that is not present and valid, with its state: missing, invalid, building
    (another session's CREATE INDEX CONCURRENTLY in progress) or covered (by an index of another name)."""
    if connection.vendor == "sqlite":
        return _sqlite_index_states()
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        catalog = index_catalog(cursor)
    patterns = {}
    for pattern in QUERY_PATTERNS:
        if pattern.expected_index:
            patterns.setdefault(pattern.expected_index[1], pattern.name)
    designed = designed_indexes()
    states = []
    for name, (model, index) in designed.items():
        present = catalog.get(name)
        if present and present["valid"]:
            continue
        statement = designed_index_sql(name)
        row = {"index": name, "table": model._meta.db_table, "pattern": patterns.get(name), "sql": statement}
        if present and present["building"]:
            states.append({**row, "state": "building"})
        elif present:
            states.append({**row, "state": "invalid"})
        else:
            shape = _designed_shape(model, index, statement)
            candidates = [i for i in catalog.values() if i["table"] == row["table"] and i["index"] not in designed]
            cover = covering_index(shape, candidates) if shape else None
            states.append({**row, "state": "covered", "covered_by": cover} if cover else {**row, "state": "missing"})
    return states


def _pattern_of(name: str) -> str | None:
    return next((p.name for p in QUERY_PATTERNS if p.expected_index and p.expected_index[1] == name), None)


def _sqlite_present(cursor) -> set[str]:
    cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    return {row[0] for row in cursor.fetchall()}


def _sqlite_index_states() -> list[dict]:
    """The embedded database's designed indexes that are missing (SQLite has no invalid or concurrent builds)."""
    with connection.cursor() as cursor:
        present = _sqlite_present(cursor)
    return [
        {"index": name, "table": model._meta.db_table, "pattern": _pattern_of(name), "sql": designed_index_sql(name),
         "state": "missing"}
        for name, (model, index) in designed_indexes().items()
        if name not in present and type(index) is models.Index  # BRIN and GIN are PostgreSQL's alone
    ]  # fmt: skip


def invalid_indexes() -> list[dict]:
    """INVALID indexes of our tables that no model declares (a hand-made build or a REINDEX CONCURRENTLY
    that was interrupted): never used by reads, still maintained on every write."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        catalog = index_catalog(cursor)
    designed = designed_indexes()
    return [
        {"index": i["index"], "table": i["table"]}
        for i in catalog.values()
        if not i["valid"] and not i["building"] and i["index"] not in designed
        and i["table"].startswith(("clinical_", "audit_"))
    ]  # fmt: skip


# A partition's index is part of its table's partitioned index (the audit trail is partitioned by month): it
# cannot be dropped alone, and a month nobody reads has no scans, so it is counted under the partitioned index,
# scans and sizes added up. An index that enforces a constraint (primary, unique, exclusion) is marked so.
_INDEX_USAGE = """
SELECT coalesce(pt.relname, s.relname), coalesce(pc.relname, s.indexrelname), sum(s.idx_scan)::bigint,
       sum(pg_relation_size(s.indexrelid))::bigint, bool_or(i.indisunique), bool_or(i.indisprimary),
       bool_or(i.indisexclusion OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                                           AND k.contype IN ('p', 'u', 'x'))),
       count(h.inhparent)
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
     LEFT JOIN pg_inherits h ON h.inhrelid = s.indexrelid
     LEFT JOIN pg_class pc ON pc.oid = h.inhparent
     LEFT JOIN pg_index pi ON pi.indexrelid = h.inhparent
     LEFT JOIN pg_class pt ON pt.oid = pi.indrelid
WHERE s.relname LIKE 'clinical\\_%%' OR s.relname LIKE 'audit\\_%%'
GROUP BY 1, 2
ORDER BY 4 DESC
"""


def index_usage(*, primary: str = "default", replica: str = "replica") -> list[dict]:
    """Every index of our tables with its size and scan count (pg_stat_user_indexes), counted on the
    primary and, where reads go to a replica, on the replica too: each server counts only its own scans,
    so an index serving every read there shows 0 on the primary. A replica that cannot be read marks the
    counts incomplete (no index is then called unused)."""
    if connections[primary].vendor != "postgresql":
        return []
    with connections[primary].cursor() as cursor:
        cursor.execute(_INDEX_USAGE)
        usage = [
            {
                "table": t,
                "index": i,
                "scans": scans,
                "bytes": size,
                "unique": unique,
                "primary": is_primary,
                "constraint": constraint,
                "partitions": partitions,
            }
            for t, i, scans, size, unique, is_primary, constraint, partitions in cursor.fetchall()
        ]
    if replica not in connections.settings:
        return usage
    try:
        with connections[replica].cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            if not cursor.fetchone()[0]:
                return usage  # the alias names the primary itself (as under test): its scans are counted
            cursor.execute(_INDEX_USAGE)
            on_replica = {index: scans for _, index, scans, *_ in cursor.fetchall()}
    except Error:
        logger.warning("index usage: the replica could not be read", exc_info=True)
        return [{**row, "scans_incomplete": True} for row in usage]
    return [{**row, "scans": row["scans"] + on_replica.get(row["index"], 0),
             "replica_scans": on_replica.get(row["index"], 0)} for row in usage]  # fmt: skip


def table_scans() -> list[dict]:
    """Tables read by sequential scans more than by index scans (pg_stat_user_tables)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0), n_live_tup
            FROM pg_stat_user_tables WHERE relname LIKE 'clinical\\_%%' ORDER BY seq_tup_read DESC
            """
        )
        return [
            {"table": t, "seq_scan": s, "seq_tup_read": r, "idx_scan": i, "live_rows": n}
            for t, s, r, i, n in cursor.fetchall()
        ]


def statistics_reset_at() -> str | None:
    """When this database's statistics were last reset (pg_stat_database.stats_reset; None: never, or not
    PostgreSQL): its counters count from then."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()")
        row = cursor.fetchone()
    return row[0].isoformat() if row and row[0] else None


def scan_counters(*, read_at: str, stats_reset: str | None, tables: list[dict], indexes: list[dict]) -> dict:
    """The cumulative counters a run read, stored with it: the next run's figures are counted from these."""
    return {
        "read_at": read_at,
        "stats_reset": stats_reset,
        "tables": {t["table"]: {key: t[key] for key in _TABLE_COUNTERS} for t in tables},
        "indexes": {i["index"]: i["scans"] for i in indexes},
    }


_TABLE_COUNTERS = ("seq_scan", "seq_tup_read", "idx_scan")

# The unused-index advice needs at least this long a window of counts: a run an hour after the last one saw
# every index unscanned for that hour. A nightly schedule's runs, a day apart, give a window long enough.
UNUSED_INDEX_MIN_WINDOW_SECONDS = 20 * 3600


def scan_window(
    table_scans: list[dict], index_usage: list[dict], *, read_at: str, stats_reset: str | None, baseline: dict | None
) -> dict:
    """Count this run's table and index scans from the previous run's counters (`baseline`: its scan_counters and
    its run), not since the statistics were last reset: PostgreSQL's counters only grow, so a table scanned a lot
    a month ago, or an index unused before a change of traffic, gave the same advice at every run for ever.

    Each row gets `window` (table) or `window_scans` (index): its counts within the window; a counter lower than
    its baseline (a table's counters reset on their own, an index built again) counts from zero. Without a
    baseline, or with one from before a statistics reset, the window starts at the reset (None: unknown)."""
    from datetime import datetime

    usable = baseline is not None and baseline["counters"].get("stats_reset") == stats_reset
    if usable:
        counters = baseline["counters"]
        window = {"since": counters["read_at"], "basis": "previous run", "run": baseline["run"]}
    else:
        counters = {"tables": {}, "indexes": {}}
        window = {"since": stats_reset, "basis": "statistics reset" if stats_reset else "no baseline", "run": None}
        if baseline is not None:
            window["note"] = f"statistics were reset after run #{baseline['run']}: counted from the reset"
    since = datetime.fromisoformat(window["since"]) if window["since"] else None
    window["until"] = read_at
    window["seconds"] = round((datetime.fromisoformat(read_at) - since).total_seconds()) if since else None
    for row in table_scans:
        before = counters["tables"].get(row["table"])
        if before is None or any(row[key] < before.get(key, 0) for key in _TABLE_COUNTERS):
            before = {}
        row["window"] = {key: row[key] - before.get(key, 0) for key in _TABLE_COUNTERS}
    for row in index_usage:
        before = counters["indexes"].get(row["index"], 0)
        row["window_scans"] = row["scans"] - before if row["scans"] >= before else row["scans"]
    window["text"] = window_text(window)
    return window


def index_scan_window(index_usage: list[dict], *, read_at: str, stats_reset: str | None, baseline: dict | None) -> dict:
    """scan_window for the indexes alone, from a baseline of UNUSED_INDEX_MIN_WINDOW_SECONDS or more (the step
    finds the latest such run): said so where it is shorter (a reset less than 20 h ago), no index called unused."""
    window = scan_window([], index_usage, read_at=read_at, stats_reset=stats_reset, baseline=baseline)
    if _short_for_unused(window):
        short = f"under {UNUSED_INDEX_MIN_WINDOW_SECONDS // 3600} h: no index is called unused over it"
        window["note"] = f"{window['note']}; {short}" if window.get("note") else short
    return window


def _short_for_unused(window: dict | None) -> bool:
    return bool(window and window.get("seconds") is not None and window["seconds"] < UNUSED_INDEX_MIN_WINDOW_SECONDS)


def window_text(window: dict | None) -> str:
    """The window of a run's scan figures in words, for its advice and report."""
    if not window:
        return "since statistics were reset"
    hours = f"{window['seconds'] / 3600:,.1f} h" if window.get("seconds") is not None else None
    if window["basis"] == "previous run":
        return f"in the {hours} since run #{window['run']} ({window['since'][:16].replace('T', ' ')} UTC)"
    if window["basis"] == "statistics reset":
        return f"in the {hours} since statistics were reset ({window['since'][:16].replace('T', ' ')} UTC)"
    return "since statistics began (no earlier run to count from, no reset recorded)"


def slow_statements(limit: int = 10) -> dict:
    """The slowest statements by mean time, where pg_stat_statements is loaded on the server."""
    if connection.vendor != "postgresql":
        return {"available": False, "reason": "PostgreSQL only"}
    with connection.cursor() as cursor:
        return statement_statistics(cursor, limit=limit)


def statement_statistics(cursor, *, limit: int = 10) -> dict:
    """pg_stat_statements' slowest statements of this database, their text without literals. Never fails
    the step: a server without the library, or a role that may not read it (a production role is rarely a
    superuser: it may not even read shared_preload_libraries), is a reason in the report."""
    import psycopg

    refused = (DatabaseError, psycopg.Error)
    try:
        cursor.execute("SHOW shared_preload_libraries")
        loaded = "pg_stat_statements" in cursor.fetchone()[0]
    except refused:
        loaded = None  # this role may not read the setting: reading the view tells
    if loaded is False:
        return {
            "available": False,
            "reason": "pg_stat_statements is not in shared_preload_libraries; add it to collect statement "
            "statistics (a server restart is needed).",
        }
    try:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        if cursor.fetchone() is None:
            # Never created here: a measuring run changes nothing, and a hospital's schema changes are the DBA's.
            return {
                "available": False,
                "reason": "pg_stat_statements is not installed in this database: a role that may (its owner or a "
                "superuser) runs CREATE EXTENSION pg_stat_statements once, and GRANTs pg_read_all_stats to "
                "this role to read every role's statements.",
            }
        # The optimizer's own statements (tagged; an EXPLAIN is never the application's) are left out.
        cursor.execute(
            "SELECT query, calls, mean_exec_time, total_exec_time FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND strpos(query, %s) = 0 AND query !~* '^\\s*explain\\M' "
            "ORDER BY mean_exec_time DESC LIMIT %s",
            [OWN_STATEMENT_TAG, limit],
        )
        rows = cursor.fetchall()
    except refused as exc:
        return {
            "available": False,
            "reason": "pg_stat_statements cannot be used by this role "
            f"({error_line(exc)}); a superuser can preload it, run CREATE EXTENSION "
            "pg_stat_statements and GRANT pg_read_all_stats to it.",
        }
    return {
        "available": True,
        "statements": [
            {"query": redact_sql(q or "")[:500], "calls": c, "mean_ms": round(m, 3), "total_ms": round(t, 1)}
            for q, c, m, t in rows
        ],
    }


# PostgreSQL's lexer, as far as redaction needs it. An identifier may hold $ after its first character, so a
# $ starts a dollar quote or a $1 parameter only where no identifier runs into it.
_SQL_IDENTIFIER = re.compile(r"[^\W\d][\w$]*")
_SQL_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_SQL_PARAMETER = re.compile(r"\$\d+")
_SQL_NUMBER = re.compile(
    r"0[xX][0-9A-Fa-f_]+|0[oO][0-7_]+|0[bB][01_]+"  # PostgreSQL 16's non-decimal integers
    r"|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d+)?"
)
_STRING_PREFIXES = {"e": True, "n": False, "b": False, "x": False}  # prefix -> backslash escapes


def _quoted_end(text: str, start: int, quote: str, *, backslash: bool = False) -> tuple[int, bool]:
    """(where a quoted token that opened before `start` ends, whether it was closed): a doubled quote is one
    quote, and in an E'' string a backslash escapes the next character. Unterminated: the end of the text."""
    i = start
    while i < len(text):
        if backslash and text[i] == "\\":
            i += 2
        elif text[i] == quote:
            if not text.startswith(quote, i + 1):
                return i + 1, True
            i += 2
        else:
            i += 1
    return len(text), False


def _block_comment_end(text: str, start: int) -> int:
    """Where a /* comment that opens at `start` ends; PostgreSQL's comments nest."""
    depth, i = 1, start + 2
    while i < len(text) and depth:
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def redact_sql(text: str) -> str:
    """A statement's text with every literal replaced by `?` and every comment by `/*?*/` or `--?`.

    pg_stat_statements normalizes the constants of plannable statements only: a utility statement (DECLARE
    ... CURSOR FOR SELECT, EXPLAIN, COPY (SELECT ...) on PostgreSQL before 16; any statement with
    client-side binding) keeps its values, an MRN or a name among them, and a DBA's comment may quote one;
    the report must never quote either. A tokenizer, not a pattern: a regular expression took E'O\\'Brien'
    apart at the escaped quote and a quote inside a "quoted identifier" for the start of a string, quoting
    what followed. Quoted identifiers and $1 parameters are kept; an unterminated token is redacted to the end.
    """
    out, i, n = [], 0, len(text)
    while i < n:
        char = text[i]
        if text.startswith("--", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
            out.append("--?")
        elif text.startswith("/*", i):
            i = _block_comment_end(text, i)
            out.append("/*?*/")
        elif char == "'":
            i = _quoted_end(text, i + 1, "'")[0]
            out.append("?")
        elif char == '"':
            end, closed = _quoted_end(text, i + 1, '"')
            out.append(text[i:end] if closed else '"?')  # a runaway quote may have swallowed literals
            i = end
        elif char == "$" and (tag := _SQL_DOLLAR_TAG.match(text, i)):
            closing = text.find(tag.group(), tag.end())
            i = n if closing < 0 else closing + len(tag.group())
            out.append("?")
        elif char == "$" and (parameter := _SQL_PARAMETER.match(text, i)):
            out.append(parameter.group())
            i = parameter.end()
        elif word := _SQL_IDENTIFIER.match(text, i):
            prefix, after = word.group().lower(), word.end()
            if prefix in _STRING_PREFIXES and text.startswith("'", after):
                i = _quoted_end(text, after + 1, "'", backslash=_STRING_PREFIXES[prefix])[0]
                out.append("?")
            elif prefix == "u" and text.startswith("&'", after):  # U&'d\0061t\+000061': '' escapes only
                i = _quoted_end(text, after + 2, "'")[0]
                out.append("?")
            else:
                out.append(word.group())  # U&"..." goes on as a quoted identifier
                i = after
        elif number := _SQL_NUMBER.match(text, i):
            out.append("?")
            i = number.end()
        else:
            out.append(char)
            i += 1
    return "".join(out)


def recommendations_for(findings: dict) -> list[Draft]:
    drafts = []
    for missing in findings["missing_indexes"]:
        used_by = f"Query pattern {missing['pattern']} is designed around this index" if missing.get("pattern") else (
            "The data plane's models declare this index")  # fmt: skip
        state = (
            "it is INVALID (an interrupted concurrent build): never read, still written on every change; applying "
            "drops it and builds it again"
            if missing.get("state") == "invalid"
            else "it is missing"
        )
        drafts.append(
            Draft(
                kind="create_index",
                subject=missing["index"],
                title=f"{'Rebuild invalid' if missing.get('state') == 'invalid' else 'Create'} index "
                f"{missing['index']} on {missing['table']}",
                reason=f"{used_by}, and {state}.",
                change={"index": missing["index"], "sql": missing["sql"]},
                evidence={"pattern": missing.get("pattern"), "state": missing.get("state", "missing")},
            )
        )
    for invalid in findings.get("invalid_indexes", []):
        drafts.append(
            Draft(
                kind="repair_invalid_index",
                subject=invalid["index"],
                title=f"Repair invalid index {invalid['index']} on {invalid['table']}",
                reason="An interrupted concurrent build left it INVALID: no query reads it, every write still "
                "maintains it. Rebuild it (REINDEX INDEX CONCURRENTLY) or drop it (DROP INDEX CONCURRENTLY); "
                "a name ending in _ccnew or _ccold is a REINDEX CONCURRENTLY leftover: drop it.",
                change={},
                evidence=invalid,
                actionable=False,
            )
        )
    designed = designed_indexes()
    # Indexes are counted over their own window (index_window, 20 h or more where runs allow); a run stored
    # before it had one window for both.
    window = findings.get("scan_window")
    index_window = findings.get("index_window", window)
    during, index_during = window_text(window), window_text(index_window)
    short = _short_for_unused(index_window)
    for usage in findings["index_usage"]:
        scans = usage.get("window_scans", usage["scans"])
        if (
            scans == 0
            and not short
            and not (usage["unique"] or usage["primary"] or usage.get("constraint") or usage.get("scans_incomplete"))
            and usage["bytes"] > 8 * 1024 * 1024
        ):
            drafts.append(
                Draft(
                    kind="review_unused_index",
                    subject=usage["index"],
                    title=f"Review unused index {usage['index']}",
                    reason=f"Never scanned {index_during}, {usage['bytes'] // 1024 // 1024} MiB. "
                    "Drop it only after a representative period of traffic"
                    + (
                        ", and in the model that declares it (a migration): dropped by hand, the next run proposes "
                        "it again."
                        if usage["index"] in designed
                        else "."
                    ),
                    change={},
                    evidence={**usage, "scan_window": index_window} if index_window else usage,
                    actionable=False,
                )
            )
    for table in findings["table_scans"]:
        counts = table.get("window", table)
        if table["live_rows"] > SEQ_SCAN_ROWS and counts["seq_tup_read"] > 10 * max(table["live_rows"], 1):
            drafts.append(
                Draft(
                    kind="investigate_seq_scans",
                    subject=table["table"],
                    title=f"Investigate sequential scans on {table['table']}",
                    reason=f"{counts['seq_scan']:,} sequential scans read {counts['seq_tup_read']:,} rows {during}; "
                    "a query outside the registered patterns may lack an index.",
                    change={},
                    evidence={**table, "scan_window": window} if window else table,
                    actionable=False,
                )
            )
    return drafts


# Set by a run while it applies: true once the run no longer wants its changes (cancelled, or failed by the
# stuck checker). A build takes minutes on a large table; it is stopped on the server rather than finished.
build_abandoned: ContextVar[Callable[[], bool] | None] = ContextVar("build_abandoned", default=None)


class BuildCancelled(Exception):
    pass


@contextlib.contextmanager
def _cancelled_when_abandoned(cursor) -> Iterator[threading.Event]:
    """Watch, from a thread with its own connection, whether the build is still wanted, and cancel this
    session's statement when it is not. The watcher is stopped before the session runs anything else, so
    the cancel can only reach the build (a cancel reaching an idle session is ignored by PostgreSQL)."""
    abandoned, fired = build_abandoned.get(), threading.Event()
    if abandoned is None:
        yield fired
        return
    cursor.execute("SELECT pg_backend_pid()")
    pid, done = cursor.fetchone()[0], threading.Event()

    def watch() -> None:
        try:
            while not done.wait(1.0):
                if abandoned():
                    with connection.cursor() as other:
                        other.execute("SELECT pg_cancel_backend(%s)", [pid])
                    fired.set()
                    return
        finally:
            connection.close()

    watcher = threading.Thread(target=watch, name="index-build-watch", daemon=True)
    watcher.start()
    try:
        yield fired
    finally:
        done.set()
        watcher.join()


def index_create(*, index: str) -> dict:
    """Create a designed index CONCURRENTLY (no table lock), replacing an invalid leftover of the same name.

    The statement is built from the model's current definition, never from what a proposal stored.
    Safe to repeat: a worker lost in the middle leaves an INVALID index, which the next attempt drops; a
    build that fails here, or is interrupted (Ctrl-C, SIGTERM), drops its own invalid index at once. Two
    appliers at once (two runs, or a run and an admin) take turns on an advisory lock: two concurrent builds
    of one index deadlock, and the second would take the first's build in progress for a leftover. A build
    by another session (a migration) is waited for, never dropped.
    """
    statement = designed_index_sql(index)
    if connection.vendor == "sqlite":
        if type(designed_indexes()[index][1]) is not models.Index:
            raise ValueError(f"{index} is a PostgreSQL index type; SQLite runs without it.")
        with connection.cursor() as cursor:
            if index in _sqlite_present(cursor):
                return {"index": index, "sql": statement, "note": "already present"}
            cursor.execute(statement)
        return {"index": index, "sql": statement}
    if connection.vendor != "postgresql":
        raise ValueError("Indexes are created on PostgreSQL and SQLite only.")
    lock, still_wanted = f"optimizer.index_create:{index}", _still_wanted(index)
    with connection.cursor() as cursor:
        # Read before the lock is taken: a failure here leaves nothing held on the pooled connection.
        cursor.execute("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')")
        timeouts = cursor.fetchone()
        # Polled, not waited for in a statement: CREATE INDEX CONCURRENTLY waits for every open transaction,
        # a statement blocked on the lock included, so a blocking pg_advisory_lock would deadlock with it.
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [lock])
            if cursor.fetchone()[0]:
                break
            still_wanted()
            time.sleep(0.2)
        # A role's statement_timeout and lock_timeout (ALTER ROLE ... SET) are for requests: a build on a large
        # table outlasts the one, and waits out every older snapshot (a lock wait) past the other; either
        # cancelled it every time, and its leftover was dropped. A run that no longer wants it cancels it instead.
        try:
            cursor.execute("SELECT set_config('statement_timeout', '0', false), set_config('lock_timeout', '0', false)")
            return _index_create(cursor, index=index, sql=statement)
        finally:
            try:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false)",
                    list(timeouts),
                )
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [lock])
            except Error:  # a broken connection: its session, and the lock with it, is gone
                logger.warning("could not release the advisory lock of %s", index, exc_info=True)


# How long to wait for another session's build of the same index before giving up.
FOREIGN_BUILD_WAIT_SECONDS = 3600


def _index_state(cursor, index: str) -> tuple[bool, bool] | None:
    """(valid, being built by some session) of an index of this schema, or None when there is none."""
    cursor.execute(
        f"SELECT i.indisvalid, {_BUILDING} "  # noqa: S608 - a constant fragment; the name is a parameter
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
        [index],
    )
    return cursor.fetchone()


def _still_wanted(index: str) -> Callable[[], None]:
    """A check for the waits before a build (another applier's turn, another session's build: up to an hour),
    raising BuildCancelled once the run no longer wants the index; it asks at most once a second."""
    abandoned, asked = build_abandoned.get(), [time.monotonic()]

    def check() -> None:
        if abandoned is None or time.monotonic() - asked[0] < 1.0:
            return
        asked[0] = time.monotonic()
        if abandoned():
            raise BuildCancelled(f"Stopped with its run while waiting to build {index}; nothing was built.")

    return check


def _drop_leftover(cursor, index: str) -> None:
    """A failed or interrupted concurrent build leaves its index INVALID: written on every change, read by
    nothing. Dropped here at once rather than by the next attempt, which may never come."""
    try:
        left = _index_state(cursor, index)
        if left and not left[0] and not left[1]:
            cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"')
    except Error:
        logger.warning("could not drop the invalid index %s left by a failed build", index, exc_info=True)


def _index_create(cursor, *, index: str, sql: str) -> dict:
    state, still_wanted = _index_state(cursor, index), _still_wanted(index)
    waited_until, seen_idle = time.monotonic() + FOREIGN_BUILD_WAIT_SECONDS, False
    while state and not state[0]:
        still_wanted()
        if state[1]:
            seen_idle = False
            if time.monotonic() > waited_until:
                raise RuntimeError(f"Another session has been building {index} for over an hour; try again later.")
        elif seen_idle:
            break  # invalid, and no session building it twice in a row: a leftover
        else:
            # A build's progress report ends just before its transaction commits the index valid: look twice.
            seen_idle = True
        time.sleep(0.5)
        state = _index_state(cursor, index)
    if state and state[0]:
        return {"index": index, "sql": sql, "note": "already present"}
    if state:
        cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"')
    cancelled = threading.Event()
    try:
        with _cancelled_when_abandoned(cursor) as cancelled:
            cursor.execute(sql)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM (optimize's Terminated): psycopg cancelled the build, which left its index INVALID.
        _drop_leftover(cursor, index)
        raise
    except DatabaseError as exc:
        _drop_leftover(cursor, index)
        if cancelled.is_set():
            raise BuildCancelled(
                f"Stopped with its run: the build of {index} was cancelled, its leftover dropped."
            ) from exc
        raise
    return {"index": index, "sql": sql}
