"""JSON that every reader accepts: NaN and infinity (a score with no value, a rate over an empty window) as null.

json.dumps writes them bare, which a browser's JSON.parse refuses (the whole frame or page config lost) and
PostgreSQL's jsonb refuses (the row not saved)."""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_none(value: Any) -> Any:
    """`value` with every NaN and infinity as None, containers walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(inner) for inner in value]
    return value


def strict_json(content: Any) -> str:
    """json.dumps with non-finite numbers as null; the walk only when there is one."""
    try:
        return json.dumps(content, allow_nan=False)
    except ValueError:
        return json.dumps(finite_or_none(content), allow_nan=False)
