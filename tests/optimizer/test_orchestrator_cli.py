"""The brief's orchestrator command line (performance/performance_orchestrator.py) as a user runs it."""

import subprocess
import sys

from tests.helpers import REPO_ROOT, embedded_env


def test_help_shows_the_options_that_pass_through(tmp_path):
    """--help listed --optimize alone: --response-time, --cache-hit-rate, --apply ... were nowhere."""
    shown = subprocess.run([sys.executable, "performance/performance_orchestrator.py", "--help"], cwd=REPO_ROOT,
                           env=embedded_env(tmp_path), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    for option in ("--optimize", "--response-time", "--cache-hit-rate", "--apply", "--inline", "--report"):
        assert option in shown.stdout, option


def test_a_refused_option_exits_2_as_the_command_does(tmp_path):
    refused = subprocess.run(
        [sys.executable, "performance/performance_orchestrator.py", "--optimize", "caching", "--cache-hit-rate", "2"],
        cwd=REPO_ROOT, env=embedded_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2 and "--cache-hit-rate must be above 0" in refused.stderr, refused.stderr
