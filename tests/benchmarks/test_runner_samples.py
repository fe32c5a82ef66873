"""What the runner makes of the samples files its generator processes leave. A process killed in the middle
of a flush cannot be produced on demand with real Locust (the kill must land inside one write), so a
stand-in executable takes Locust's place and leaves what such a kill leaves: whole lines, then one cut
short. Everything else (the runner, its watch, its folder) is the real one."""

import os
import stat
import sys

from apps.benchmarks import runner

STAND_IN = """#!{python}
import json, os
path = os.environ["BENCH_SAMPLES_FILE"].replace("{{pid}}", str(os.getpid()))
with open(path, "w") as handle:
    for i in range(3):
        handle.write(json.dumps([i * 0.1, 10.0 + i, 10.0 + i, 1, "card"]) + "\\n")
    handle.write('[0.3, 12.5, 12')  # SIGKILLed mid-write
"""


def test_a_sample_cut_short_by_a_kill_costs_that_sample_not_the_run(tmp_path, monkeypatch):
    stand_in = tmp_path / "locust"
    stand_in.write_text(STAND_IN.format(python=sys.executable))
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(runner, "LOCUST", str(stand_in))
    work = tmp_path / "run"
    work.mkdir()
    outcome = runner.run_locust(base_url="http://127.0.0.1:9", requests=[{"name": "card", "path": "/card"}],
                                token="t", patients=[], stages=[[1, 1, 1]], stress_gate=None, rate_per_user=None,
                                should_stop=lambda: False, on_tick=lambda *_: None, workdir=work)  # fmt: skip
    assert outcome.status == "succeeded", outcome.error
    assert outcome.samples == [[i * 0.1, 10.0 + i, 10.0 + i, 1, "card"] for i in range(3)]
    assert os.listdir(work)  # the stand-in ran in the run's folder
