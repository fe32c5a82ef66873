"""A management command starts without django-axes announcing itself on stderr: its "AXES: BEGIN version ..."
INFO line came first on every `manage.py` command an operator ran, before the command's own output."""

from tests.helpers import embedded_env, manage


def test_a_command_writes_nothing_before_its_own_output(tmp_path):
    result = manage("check", env=embedded_env(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "AXES" not in result.stderr
    assert result.stderr.strip() == ""
