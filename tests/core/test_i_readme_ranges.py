"""README: "every variable is checked at start-up ... timeouts above 0 and at most an hour, percentages ...".
OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS took up to 2,147,483 s; RESOURCE_*_PCT took 0.5 (a threshold admin refuses:
every sample a breach); BENCHMARK_TOKEN_HOSTS was not checked at all (`http://x` started and matched nothing, so
every benchmark run was refused its token). Each now stops start-up naming the variable."""

import pytest

from apps.benchmarks.token_hosts import token_host_problem
from tests.helpers import embedded_env, run_python

START = "import django; django.setup(); from django.conf import settings as s; print(s.BENCHMARK_TOKEN_HOSTS)"


def _start(tmp_path, **variables):
    return run_python(START, embedded_env(tmp_path, **variables))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS", "3601", "must be at least 0.001 and at most 3600; it is 3601.0"),
        ("OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS", "2147483", "at most 3600"),
        ("RESOURCE_CPU_PCT", "0.5", "RESOURCE_CPU_PCT must be at least 1 and at most 100; it is 0.5"),
        ("RESOURCE_REDIS_MEMORY_PCT", "0", "RESOURCE_REDIS_MEMORY_PCT must be at least 1 and at most 100"),
        ("BENCHMARK_TOKEN_HOSTS", "http://x", "in 'http://x' a host, not a URL: no scheme or path."),
        ("BENCHMARK_TOKEN_HOSTS", "127.0.0.1,*", "in '*' '*' is not a host name or address"),
        ("BENCHMARK_TOKEN_HOSTS", "127.0.0.1:70000", "the port '70000' is not one from 1 to 65535"),
        ("BENCHMARK_TOKEN_HOSTS", "[::1]8000", "in '[::1]8000' a bracketed IPv6 address is [address] or"),
        ("BENCHMARK_TOKEN_HOSTS", "localhost:", "the port '' is not one"),
    ],
)
def test_a_value_past_the_readmes_rule_stops_start_up(tmp_path, variable, value, message):
    result = _start(tmp_path, **{variable: value})
    assert result.returncode != 0, result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: The environment variable " + variable)
    assert message in last_line, last_line


def test_values_within_the_rules_start(tmp_path):
    hosts = "127.0.0.1, localhost:8000,[::1]:8000,::1,controlplane-api,scoring_1.hospital.example.,10.0.0.5:443"
    result = _start(
        tmp_path, OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS="3600", RESOURCE_CPU_PCT="1", RESOURCE_DISK_PCT="100",
        BENCHMARK_TOKEN_HOSTS=hosts,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str([entry.strip() for entry in hosts.split(",")])


@pytest.mark.parametrize(
    "entry", ["127.0.0.1", "localhost", "::1", "[::1]", "[::1]:8000", "api.example.org:65535", "fe80::1%eth0"]
)
def test_entries_the_matcher_reads_are_taken(entry):
    assert token_host_problem(entry) is None


@pytest.mark.parametrize(
    "entry", ["http://x", "*", "-a.example", "a..b", "127.0.0.1:0", "[127.0.0.1]", "[::1]:x", "1::2::3", "héte"]
)
def test_entries_the_matcher_cannot_read_are_refused(entry):
    assert token_host_problem(entry)
