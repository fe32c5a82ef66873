"""The dashboard's JavaScript size budgets, from the build's Vite manifest: gzipped bytes of what the
first page load needs (the entry and its static imports) and of what each lazily loaded page adds."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

INITIAL_JS_BUDGET_KB = 100
PAGE_CHUNK_BUDGET_KB = 150


def _closure(manifest: dict, key: str, seen: set[str] | None = None) -> set[str]:
    """The chunk and every chunk it imports statically."""
    seen = set() if seen is None else seen
    if key in seen:
        return seen
    seen.add(key)
    for imported in manifest[key].get("imports", []):
        _closure(manifest, imported, seen)
    return seen


def _gzip_kb(build: Path, manifest: dict, keys: set[str]) -> float:
    size = 0
    for key in keys:
        data = (build / manifest[key]["file"]).read_bytes()
        size += len(gzip.compress(data, compresslevel=9))
    return round(size / 1024, 2)


def bundle_sizes(build: Path) -> dict:
    """{"initial_js_kb": gzipped KB, "pages": {page: gzipped KB it adds}} for a built dashboard."""
    manifest = json.loads((build / ".vite" / "manifest.json").read_text())
    entry = next(key for key, chunk in manifest.items() if chunk.get("isEntry"))
    initial = _closure(manifest, entry)
    pages = {}
    for key, chunk in manifest.items():
        if chunk.get("isDynamicEntry"):
            pages[Path(chunk["src"]).stem] = _gzip_kb(build, manifest, _closure(manifest, key) - initial)
    return {"initial_js_kb": _gzip_kb(build, manifest, initial), "pages": dict(sorted(pages.items()))}
