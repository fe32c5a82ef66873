"""VAR_DIR, PROMETHEUS_MULTIPROC_DIR and STATIC_ROOT naming a file (or a path under one) stop start-up with an
ImproperlyConfigured naming the variable, as every other settings check does, not a FileExistsError traceback
naming none."""

import pytest

from tests.helpers import embedded_env, run_python


@pytest.mark.parametrize("variable", ["VAR_DIR", "PROMETHEUS_MULTIPROC_DIR", "STATIC_ROOT"])
@pytest.mark.parametrize("under", [False, True])
def test_a_folder_variable_naming_a_file_stops_start_up_naming_it(tmp_path, variable, under):
    var_dir = tmp_path / "var"
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    value = a_file / "sub" if under else a_file
    env = embedded_env(var_dir, **{"PROMETHEUS_MULTIPROC_DIR": str(var_dir / "prometheus"), variable: str(value)})
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured"), result.stderr
    assert f"The environment variable {variable} must name a folder" in last_line


def test_folders_that_do_not_exist_yet_are_created(tmp_path):
    env = embedded_env(tmp_path / "var", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
                       STATIC_ROOT=str(tmp_path / "static" / "collected"))  # fmt: skip
    result = run_python("import django; django.setup()", env)
    assert result.returncode == 0, result.stderr
    assert all(path.is_dir() for path in (tmp_path / "var", tmp_path / "prom", tmp_path / "static" / "collected"))
