"""Boolean variables took an empty value as false and undocumented words (ok, y, n): a blank templated
`SESSION_COOKIE_SECURE=` started with insecure cookies, no error. README documents true/false, 1/0, yes/no and
on/off (any case); anything else, empty included (as for a number), now stops start-up naming the variable."""

import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane.settings import BASE_DIR, CheckedEnv
from tests.helpers import embedded_env, run_python

BOOLEANS = sorted(set(re.findall(r'env\.bool\(\s*"([A-Z0-9_]+)"', (BASE_DIR / "controlplane/settings.py").read_text())))


def _read(variable: str, value: str, default: bool):
    env = CheckedEnv()
    env.ENVIRON = {variable: value}
    return env.bool(variable, default=default)


def test_the_boolean_variables_are_found():
    assert {"DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "AUDIT_GROUP_COMMIT"} <= set(BOOLEANS)


@pytest.mark.parametrize("variable", BOOLEANS)
@pytest.mark.parametrize("value", ["", " ", "ok", "y", "n", "OK", "Y", "N", "2", "-1", "00"])
@pytest.mark.parametrize("default", [True, False])
def test_a_word_readme_does_not_document_is_refused(variable, value, default):
    with pytest.raises(ImproperlyConfigured, match=rf"^The environment variable {variable} must be true or false"):
        _read(variable, value, default)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("Yes", True), ("on", True), (" on ", True),
     ("false", False), ("False", False), ("0", False), ("NO", False), ("off", False)],
)  # fmt: skip
@pytest.mark.parametrize("default", [True, False])
def test_the_documented_words_are_read_in_any_case(value, expected, default):
    assert _read("SESSION_COOKIE_SECURE", value, default) is expected


@pytest.mark.parametrize("value", ["", "n"])
def test_a_blank_secure_cookie_flag_stops_start_up(tmp_path, value):
    env = embedded_env(
        tmp_path, DEBUG="false", SECRET_KEY="s" * 50, ALLOWED_HOSTS="cp.example.org", SESSION_COOKIE_SECURE=value
    )
    code = "import django; django.setup(); from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE)"
    result = run_python(code, env)
    assert result.returncode != 0, result.stdout  # was 0, printing False
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        "django.core.exceptions.ImproperlyConfigured: The environment variable SESSION_COOKIE_SECURE "
        "must be true or false (or 1/0, yes/no, on/off)."
    ), last_line
