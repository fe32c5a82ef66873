"""A bad setting stops every manage.py command, and `make run` at its first step (start_processes.py --check), with
one line naming it and exit status 1: Django's handling printed a traceback, or "Unknown command" for the project's
own commands (seed_demo) with the error in a note. --settings and --pythonpath are honoured before it."""

import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT, embedded_env, manage

NOT_A_DATABASE_URL = "The environment variable DATABASE_URL is not a database URL"


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Configuration error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["check"], ["migrate", "--noinput"], ["seed_demo"], ["help"]])
def test_a_bad_database_url_stops_a_command_in_one_line(tmp_path, command):
    # No scheme: django-environ's warning about it echoed the URL, password and all.
    result = manage(*command, env=embedded_env(tmp_path, DATABASE_URL="app:hunter2@db.example/cp"))
    assert NOT_A_DATABASE_URL in _one_line(result)
    assert "hunter2" not in result.stderr


def test_a_value_an_app_checks_when_ready_stops_a_command_in_one_line(tmp_path):
    result = manage("check", env=embedded_env(tmp_path, READYZ_REQUIRED="database,databse"))
    assert "READYZ_REQUIRED names no /readyz check: databse" in _one_line(result)


def test_runserver_without_its_reloader_stops_in_one_line(tmp_path):
    result = manage("runserver", "--noreload", "127.0.0.1:0", env=embedded_env(tmp_path, DEBUG="fasle"))
    assert "DEBUG must be true or false" in _one_line(result)


def test_the_settings_module_named_by_the_option_is_the_one_loaded(tmp_path):
    """--settings (and --pythonpath) are read before the settings are loaded, over DJANGO_SETTINGS_MODULE."""
    (tmp_path / "site_settings.py").write_text(
        "from django.core.exceptions import ImproperlyConfigured\n"
        "raise ImproperlyConfigured('site settings\\nrefused')\n"
    )
    env = {**embedded_env(tmp_path), "DJANGO_SETTINGS_MODULE": "no_such_settings"}
    result = manage("check", "--settings=site_settings", "--pythonpath", str(tmp_path), env=env)
    assert _one_line(result) == "Configuration error: site settings refused"
    assert manage("check", "--settings", "controlplane.settings", env=env).returncode == 0


def test_a_settings_module_that_is_not_there_is_named(tmp_path):
    result = manage("check", "--settings=no_such.settings", env=embedded_env(tmp_path))
    assert "the settings module no_such.settings was not found" in _one_line(result)


def _check(tmp_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "start_processes.py"), "--check"],
        cwd=tmp_path, env=embedded_env(tmp_path / "var", **env), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_make_runs_first_step_loads_the_settings(tmp_path):
    """`make run` stopped only at `migrate`, its second step, on a traceback; now at `--check`, in one line."""
    assert NOT_A_DATABASE_URL in _one_line(_check(tmp_path, DATABASE_URL="nonsense"))
    assert "DB_POOL_MAX_SIZE must be a whole number" in _one_line(_check(tmp_path, DB_POOL_MAX_SIZE="fifty"))
    good = _check(tmp_path)
    assert good.returncode == 0 and good.stdout == "" and good.stderr == "", good.stdout + good.stderr
