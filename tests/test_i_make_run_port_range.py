"""`make run PORT=70000` passed ports-free (bash's /dev/tcp to port 70000 fails quietly, read as free), migrated,
then failed in seed_demo with a traceback. ports-free now refuses a PORT or LIVE_PORT outside 1-65535 in one
line, before anything is installed or set up."""

from pathlib import Path

import pytest

from tests.test_makefile import checkout, make, pytestmark  # noqa: F401 - the fixture and the skip without make


@pytest.mark.parametrize(
    ("argument", "line"),
    [
        ("PORT=70000", "PORT must be a port from 1 to 65535; it is '70000'."),
        ("PORT=0", "PORT must be a port from 1 to 65535; it is '0'."),
        ("PORT=http", "PORT must be a port from 1 to 65535; it is 'http'."),
        ("PORT=", "PORT must be a port from 1 to 65535; it is ''."),
        ("LIVE_PORT=65536", "LIVE_PORT must be a port from 1 to 65535; it is '65536'."),
        ("LIVE_PORT=99999999999999999999", "LIVE_PORT must be a port from 1 to 65535; it is '99999999999999999999'."),
    ],
)
def test_a_port_outside_1_to_65535_stops_make_run_in_one_line(checkout: Path, argument: str, line: str) -> None:  # noqa: F811
    (checkout / "frontend/package.json").write_text("changed\n")  # an install would be due
    done = make(checkout, "run", argument)
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == line, done.stderr
    assert not (checkout / "npm.calls").exists()
    assert not (checkout / "python.calls").exists()


@pytest.mark.parametrize(
    "arguments", [("PORT=9100", "LIVE_PORT=9100"), ("PORT=9100", "LIVE_PORT=09100"), ("PORT=8001",)]
)
def test_equal_ports_stop_make_run_in_one_line(checkout: Path, arguments: tuple[str, ...]) -> None:  # noqa: F811
    """Equal ports passed: make run migrated and seeded, then the api and the live server collided on the port."""
    (checkout / "frontend/package.json").write_text("changed\n")  # an install would be due
    done = make(checkout, "run", *arguments)
    assert done.returncode != 0
    port = arguments[0].partition("=")[2]
    line = f"PORT and LIVE_PORT must differ (the api and the live server each need one); both are {port}."
    assert done.stderr.splitlines()[0] == line, done.stderr
    assert not (checkout / "npm.calls").exists()
    assert not (checkout / "python.calls").exists()
