"""How long browsers keep the static files WhiteNoise serves (WHITENOISE_IMMUTABLE_FILE_TEST and
WHITENOISE_ADD_HEADERS_FUNCTION in settings). Plain Python, no Django: safe at settings time."""

from __future__ import annotations

import re
from wsgiref.headers import Headers

# Vite names each file it emits under the dashboard's assets/ by its content (index-BCrDzTuU.js, Chart-CnsZ1jie.css:
# eight base64url characters, "-" and "_" among them): a new build is a new name, so a name never changes content.
_HASHED_ASSET = re.compile(r"/dashboard/assets/[^/]+-[A-Za-z0-9_-]{8}\.[A-Za-z0-9]+$")
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"


def hashed_asset(path: str, url: str) -> bool:
    """Whether `url` is one of Vite's content-hashed assets, kept a year without asking again."""
    return bool(_HASHED_ASSET.search(url))


def static_cache_headers(headers: Headers, path: str, url: str) -> None:
    """A year, never revalidated, for a hashed asset; everything else keeps WhiteNoise's WHITENOISE_MAX_AGE. The
    dashboard's assets were revalidated on every page load (max-age=0 or 60), admin's too: a 304 each."""
    if hashed_asset(path, url):
        headers["Cache-Control"] = IMMUTABLE_CACHE_CONTROL
