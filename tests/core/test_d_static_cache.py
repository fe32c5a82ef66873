"""Static files' Cache-Control: Vite's content-hashed assets (the dashboard's assets/) a year and immutable, never
revalidated; every other file an hour outside DEBUG (WhiteNoise's 60 s before), none in DEBUG. Served by a real
WhiteNoise in a process of its own, as DEBUG is read when the settings load."""

import json

import pytest

from apps.core.static_files import IMMUTABLE_CACHE_CONTROL, hashed_asset
from tests.helpers import embedded_env, run_python

ASSETS = ["index-BCrDzTuU.js", "Chart-CnsZ1jie.css", "CachePage-Cn-QNDRH.js", "SessionGuard-4cUYuW7_.js"]
REQUEST = """
import json, django; django.setup()
from django.test import Client
urls = json.loads({urls!r})
print(json.dumps({{url: Client().get(url).get("Cache-Control") for url in urls}}))
"""


def _cache_control(tmp_path, debug: bool) -> dict[str, str | None]:
    collected = tmp_path / "collected"
    (collected / "dashboard" / "assets").mkdir(parents=True)
    (collected / "dashboard" / ".vite").mkdir()
    for name in ASSETS:
        (collected / "dashboard" / "assets" / name).write_text("/* built */\n")
    (collected / "dashboard" / ".vite" / "manifest.json").write_text("{}\n")
    urls = [f"/static/dashboard/assets/{name}" for name in ASSETS]
    urls += ["/static/dashboard/.vite/manifest.json", "/static/admin/css/base.css"]
    env = embedded_env(
        tmp_path / "var", STATIC_ROOT=str(collected), DEBUG="true" if debug else "false",
        SECRET_KEY="a-test-key-" + "x" * 50, ALLOWED_HOSTS="testserver",
    )  # fmt: skip
    result = run_python(REQUEST.format(urls=json.dumps(urls)), env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("debug", [False, True])
def test_vites_hashed_assets_are_immutable_for_a_year_and_other_files_an_hour(tmp_path, debug):
    headers = _cache_control(tmp_path, debug)
    for name in ASSETS:
        assert headers[f"/static/dashboard/assets/{name}"] == IMMUTABLE_CACHE_CONTROL, headers
    others = "max-age=0, public" if debug else "max-age=3600, public"
    assert headers["/static/dashboard/.vite/manifest.json"] == others, headers
    assert headers["/static/admin/css/base.css"] == others, headers


@pytest.mark.parametrize(
    ("url", "hashed"),
    [
        ("/static/dashboard/assets/index-BCrDzTuU.js", True),
        ("/static/dashboard/assets/Cn-QNDRH.js", False),  # no name before the hash: not Vite's
        ("/static/dashboard/assets/index.js", False),
        ("/static/dashboard/index.html", False),
        ("/static/admin/js/core-abcdefgh.js", False),  # not under the dashboard's assets
        ("/static/dashboard/assets/sub/index-BCrDzTuU.js", False),
    ],
)
def test_only_vites_assets_count_as_hashed(url, hashed):
    assert hashed_asset("", url) is hashed
