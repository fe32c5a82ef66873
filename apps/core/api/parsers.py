"""DRF's JSON parser, with a body nested deeper than Python's recursion limit answered as a parse error
(400) instead of a RecursionError (500), and a lone surrogate refused."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


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
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        if _has_lone_surrogate(data):
            raise ParseError("JSON parse error - a \\ud800-\\udfff escape that is not half of a pair is no character.")
        return data
