"""Walks the apps' migrations backwards and forwards on the database DATABASE_URL names (an empty, throwaway one).
Prints what failed as a JSON list, one line, last. By hand:
`DATABASE_URL=postgres://.../scratch python -m tests.deploy.migration_walk [--all]`.

Everything is migrated; then, app by app (dependents first), the app's newest migration is reversed, then the one
before it, and everything is migrated again: a rollback by a release or two, and the next upgrade after it.
`--all` then reverses every migration of apps/*, newest first, one at a time, down to zero, and migrates everything
again (with it about 35 s here, on a quiet machine).
"""

from __future__ import annotations

import json
import os
import sys

Node = tuple[str, str | None]
STEPS_BACK = 2  # per app, in CI: a new migration is among its app's last two while its release is the latest


def main(everything_to_zero: bool = False) -> list[str]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    django.setup()
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    loader = MigrationExecutor(connection).loader
    graph = loader.graph
    own = {key for key, migration in loader.disk_migrations.items() if migration.__module__.startswith("apps.")}
    leaves = graph.leaf_nodes()
    order: list[Node] = []  # apps/* migrations in the order migrate applies them
    for leaf in leaves:
        order += [node for node in graph.forwards_plan(leaf) if node in own and node not in order]
    apps_dependents_first = list(dict.fromkeys(app for app, _ in reversed(order)))
    failures: list[str] = []

    def migrate(label: str, targets: list[Node]) -> bool:
        try:
            MigrationExecutor(connection).migrate(targets)  # a fresh executor: it reads what is applied now
        except Exception as exc:  # noqa: BLE001 - every failure is reported, with its migration
            failures.append(f"{label}: {type(exc).__name__}: {exc}")
            return False
        return True

    def previous(node: Node) -> Node:
        parents = [parent.key for parent in graph.node_map[node].parents if parent.key[0] == node[0]]
        return (node[0], parents[0][1]) if parents else (node[0], None)

    if not migrate("migrate", leaves):
        return failures
    for app in apps_dependents_first:
        for node in [node for node in order if node[0] == app][::-1][:STEPS_BACK]:
            if not migrate(f"{node[0]}.{node[1]} backwards", [previous(node)]):
                break
        if not migrate(f"{app} forwards again", leaves):
            return failures
    if everything_to_zero:
        for node in reversed(order):
            if not migrate(f"{node[0]}.{node[1]} backwards", [previous(node)]):
                break
        migrate("migrate again", leaves)
    return failures


if __name__ == "__main__":
    found = main(everything_to_zero="--all" in sys.argv[1:])
    sys.stdout.write("\n" + json.dumps(found) + "\n")
    sys.exit(1 if found else 0)
