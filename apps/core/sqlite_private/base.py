"""Django's SQLite backend, creating a missing database file readable by its owner alone before it connects.

`make run` runs under umask 077; a `manage.py migrate` run by hand created the embedded database under the user's
umask, 644 under the usual 022, so any local user could read every patient. Created here, on the first
connection, and not when settings load: a command that never connects (the image's `collectstatic`, run as root
at build time) must not leave an empty root-owned database for the container's user."""

from __future__ import annotations

from pathlib import Path

from django.db.backends.sqlite3 import base

from apps.core.directories import private_database_file


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict):
        database = str(conn_params.get("database", ""))
        if database and not database.startswith("file:") and database != ":memory:":
            private_database_file(Path(database))
        return super().get_new_connection(conn_params)
