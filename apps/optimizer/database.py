"""The database optimizer: EXPLAIN every query pattern of the data plane, read PostgreSQL's own
statistics, and recommend (or, with apply, create) the indexes the models define but the database lacks."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable

from django.db import connection

from apps.clinical.query_patterns import QUERY_PATTERNS, pick_sample
from apps.optimizer.types import Draft

# A table is worth flagging for sequential scans only above this many rows.
SEQ_SCAN_ROWS = 10_000


# Plan keys that can quote the sample's values (an MRN in an index condition): never stored.
_VALUE_KEYS = {"Index Cond", "Filter", "Recheck Cond", "Join Filter", "Hash Cond", "Merge Cond", "Output",
               "Sort Key", "Presorted Key", "Group Key", "Cache Key", "Subplan Name", "Order By"}  # fmt: skip


def redact_plan(node: dict) -> dict:
    """The plan's shape, costs, timings and index names, without any expression that holds values."""
    kept = {key: value for key, value in node.items() if key not in _VALUE_KEYS and key != "Plans"}
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


def explain_patterns(progress: Callable[[float, str], None] = lambda fraction, message: None) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) each pattern with a real sample (SQLite: EXPLAIN QUERY PLAN), and time
    its real execution on every database. `progress` hears the share of patterns done before each."""
    sample = pick_sample()
    if sample is None:
        return []
    results = []
    for done, pattern in enumerate(QUERY_PATTERNS):
        progress(done / len(QUERY_PATTERNS), f"explain {pattern.name}")
        queryset = pattern.build(sample)
        sql, params = queryset.query.sql_with_params()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
                raw = cursor.fetchone()[0]
                plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
                nodes = _plan_nodes(plan["Plan"])
                indexes = sorted({n["Index Name"] for n in nodes if "Index Name" in n})
                seq_scans = sorted({n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"})
                results.append(
                    {
                        "pattern": pattern.name,
                        "description": pattern.description,
                        "execution_ms": round(plan["Execution Time"], 3),
                        "wall_ms": wall_ms(queryset),
                        "planning_ms": round(plan["Planning Time"], 3),
                        "indexes_used": indexes,
                        "seq_scans": seq_scans,
                        "shared_hit": plan["Plan"].get("Shared Hit Blocks", 0),
                        "shared_read": plan["Plan"].get("Shared Read Blocks", 0),
                        "expected_index": pattern.expected_index[1] if pattern.expected_index else None,
                        "plan": redact_plan(plan["Plan"]),
                    }
                )
            else:
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


def missing_indexes() -> list[dict]:
    """Indexes a query pattern expects that the database does not have (dropped, or never created)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        # An INVALID index (a concurrent build that was interrupted) is as good as missing.
        cursor.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND i.indisvalid"
        )
        present = {row[0] for row in cursor.fetchall()}
    missing, seen = [], set()
    for pattern in QUERY_PATTERNS:
        if not pattern.expected_index:
            continue
        model, name = pattern.expected_index
        if name in present or name in seen:
            continue
        seen.add(name)
        index = next(i for i in model._meta.indexes if i.name == name)
        with connection.schema_editor(collect_sql=True) as editor:
            statement = str(index.create_sql(model, editor, concurrently=True))
        missing.append({"index": name, "table": model._meta.db_table, "pattern": pattern.name, "sql": statement})
    return missing


def index_usage() -> list[dict]:
    """Every index of our tables with its size and scan count (pg_stat_user_indexes)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.relname, s.indexrelname, s.idx_scan, pg_relation_size(s.indexrelid), i.indisunique,
                   i.indisprimary
            FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
            WHERE s.relname LIKE 'clinical\\_%%' OR s.relname LIKE 'audit\\_%%'
            ORDER BY pg_relation_size(s.indexrelid) DESC
            """
        )
        return [
            {"table": t, "index": i, "scans": scans, "bytes": size, "unique": unique, "primary": primary}
            for t, i, scans, size, unique, primary in cursor.fetchall()
        ]


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


def slow_statements(limit: int = 10) -> dict:
    """The slowest statements by mean time, where pg_stat_statements is loaded on the server."""
    if connection.vendor != "postgresql":
        return {"available": False, "reason": "PostgreSQL only"}
    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_preload_libraries")
        if "pg_stat_statements" not in cursor.fetchone()[0]:
            return {
                "available": False,
                "reason": "pg_stat_statements is not in shared_preload_libraries; add it to collect statement "
                "statistics (a server restart is needed).",
            }
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cursor.execute(
            "SELECT query, calls, mean_exec_time, total_exec_time FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY mean_exec_time DESC LIMIT %s",
            [limit],
        )
        return {
            "available": True,
            "statements": [
                {"query": q[:500], "calls": c, "mean_ms": round(m, 3), "total_ms": round(t, 1)}
                for q, c, m, t in cursor.fetchall()
            ],
        }


def recommendations_for(findings: dict) -> list[Draft]:
    drafts = [
        Draft(
            kind="create_index",
            subject=missing["index"],
            title=f"Create index {missing['index']} on {missing['table']}",
            reason=f"Query pattern {missing['pattern']} is designed around this index and it is missing.",
            change={"index": missing["index"], "sql": missing["sql"]},
            evidence={"pattern": missing["pattern"]},
        )
        for missing in findings["missing_indexes"]
    ]
    for usage in findings["index_usage"]:
        if usage["scans"] == 0 and not (usage["unique"] or usage["primary"]) and usage["bytes"] > 8 * 1024 * 1024:
            drafts.append(
                Draft(
                    kind="review_unused_index",
                    subject=usage["index"],
                    title=f"Review unused index {usage['index']}",
                    reason=f"Never scanned since statistics were reset, {usage['bytes'] // 1024 // 1024} MiB. "
                    "Drop it only after a representative period of traffic.",
                    change={},
                    evidence=usage,
                    actionable=False,
                )
            )
    for table in findings["table_scans"]:
        if table["live_rows"] > SEQ_SCAN_ROWS and table["seq_tup_read"] > 10 * max(table["live_rows"], 1):
            drafts.append(
                Draft(
                    kind="investigate_seq_scans",
                    subject=table["table"],
                    title=f"Investigate sequential scans on {table['table']}",
                    reason=f"{table['seq_scan']} sequential scans read {table['seq_tup_read']:,} rows; "
                    "a query outside the registered patterns may lack an index.",
                    change={},
                    evidence=table,
                    actionable=False,
                )
            )
    return drafts


def index_create(*, index: str, sql: str) -> dict:
    """Create a designed index CONCURRENTLY (no table lock), replacing an invalid leftover of the same name.

    Safe to repeat: a worker lost in the middle leaves an INVALID index, which the next attempt drops.
    Two appliers at once (two runs, or a run and an admin) take turns on an advisory lock: two concurrent
    builds of one index deadlock, and the second would take the first's build in progress for a leftover.
    """
    lock = f"optimizer.index_create:{index}"
    with connection.cursor() as cursor:
        # Polled, not waited for in a statement: CREATE INDEX CONCURRENTLY waits for every open transaction,
        # a statement blocked on the lock included, so a blocking pg_advisory_lock would deadlock with it.
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [lock])
            if cursor.fetchone()[0]:
                break
            time.sleep(0.2)
        try:
            return _index_create(cursor, index=index, sql=sql)
        finally:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [lock])


def _index_create(cursor, *, index: str, sql: str) -> dict:
    cursor.execute(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
        [index],
    )
    row = cursor.fetchone()
    if row and row[0]:
        return {"index": index, "sql": sql, "note": "already present"}
    if row:
        cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"')
    cursor.execute(sql)
    return {"index": index, "sql": sql}
