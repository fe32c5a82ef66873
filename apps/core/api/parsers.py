"""DRF's JSON parser, with a body nested deeper than Python's recursion limit answered as a parse error
(400) instead of a RecursionError (500), a lone surrogate refused, and a name given twice in one object refused."""

from __future__ import annotations

import codecs
import json

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.utils.json import strict_constant

DUPLICATE_KEY = "Given more than once in this JSON object; send each field once."


class _Duplicated(dict):
    """An object of the body that named `duplicate` more than once (json keeps the last value silently)."""

    duplicate: str


def _pairs_hook(pairs: list[tuple[str, object]]) -> dict:
    data = dict(pairs)
    if len(data) == len(pairs):
        return data
    duplicated = _Duplicated(data)
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            duplicated.duplicate = name
            return duplicated
        seen.add(name)
    return duplicated  # not reached: fewer names than pairs


# How deep a duplicated name is placed in the field errors: DRF walks an error as deep as it is nested, and one
# placed 480 levels down (a 3 KB body) ran it past the recursion limit, a 500. Deeper, the body is a parse error.
DUPLICATE_PLACED_DEPTH = 32


def _duplicate_error(data: object, depth: int = 0) -> object | None:
    """The first object (depth first, in order) naming a field twice, as DRF's nested field errors place it:
    `{"mrn": [...]}` at the top, `{"inputs": {"age": [...]}}` in an object, `{"items": [{}, {"x": [...]}]}` in a
    list. None without any within DUPLICATE_PLACED_DEPTH."""
    if isinstance(data, _Duplicated):
        return {data.duplicate: [DUPLICATE_KEY]}
    if depth >= DUPLICATE_PLACED_DEPTH:
        return None
    if isinstance(data, dict):
        for name, value in data.items():
            error = _duplicate_error(value, depth + 1)
            if error is not None:
                return {name: error}
    elif isinstance(data, list):
        for index, value in enumerate(data):
            error = _duplicate_error(value, depth + 1)
            if error is not None:
                return [{}] * index + [error]
    return None


def _has_lone_surrogate(data: object) -> bool:
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value)  # the names too: an unknown field's is echoed in its error
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


class JSONParser(parsers.JSONParser):
    """Also refuses a lone surrogate (`"\\ud800"`): valid JSON, but no character. A 400 that echoed one (a choice
    that is none, an unknown field's name) could not be encoded as UTF-8, and the client got a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        """As DRF's, plus: a name given twice in one object (`{"mrn": "A", "mrn": "B"}`) is a 400 field error on
        that name, for every JSON endpoint. json keeps the last value unseen: a clinical write stored "B" though
        the client's own checks may have read "A" (any other JSON reader keeps the first or refuses)."""
        encoding = parsers.get_encoding(parser_context or {})
        parse_constant = strict_constant if self.strict else None
        found: list[bool] = []

        def hook(pairs: list[tuple[str, object]]) -> dict:
            data = _pairs_hook(pairs)
            if type(data) is _Duplicated and not found:
                found.append(True)
            return data

        try:
            data = json.load(codecs.getreader(encoding)(stream), parse_constant=parse_constant, object_pairs_hook=hook)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if _has_lone_surrogate(data):  # first: a duplicated name with one could not be echoed
            raise ParseError("JSON parse error - a \\ud800-\\udfff escape that is not half of a pair is no character.")
        if found:
            error = _duplicate_error(data)
            if error is None:
                raise ParseError(f"JSON parse error - a name is given twice in an object nested more than "
                                 f"{DUPLICATE_PLACED_DEPTH} deep; send each field once.")  # fmt: skip
            raise ValidationError(error)
        return data
