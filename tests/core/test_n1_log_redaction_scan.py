"""The database-value redaction every log line passes through: values that run over lines, COPY's CONTEXT, and a
scan whose work grows with the line's length, never with its square (a caller's Host header is logged whole)."""

import re

import psycopg
import pytest

from apps.core import log_filters
from apps.core.log_filters import redact_database_values


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            'null value in column "name" of relation "p" violates not-null constraint\n'
            "DETAIL:  Failing row contains (MRN-5\nX, null, 1980-01-01).",
            'null value in column "name" of relation "p" violates not-null constraint\n'
            "DETAIL:  Failing row contains (withheld).",
        ),
        (
            'duplicate key value violates unique constraint "u"\nDETAIL:  Key (mrn)=(MRN-1\nx) already exists.',
            'duplicate key value violates unique constraint "u"\nDETAIL:  Key (mrn)=(withheld) already exists.',
        ),
        (
            'invalid input syntax for type date: "1980-13-45"\nCONTEXT:  COPY p, line 1, column birth: "1980-13-45"',
            'invalid input syntax for type date: "withheld"\nCONTEXT:  COPY p, line 1, column birth: "withheld"',
        ),
        (  # a COPY error about the line itself quotes the whole input line: every column of the row
            'extra data after last expected column\nCONTEXT:  COPY p, line 3: "MRN-9\tOde\tAda\t1980-01-02\tx"',
            'extra data after last expected column\nCONTEXT:  COPY p, line 3: "withheld"',
        ),
        (
            'conflicting key value violates exclusion constraint "x"\n'
            "DETAIL:  Key (mrn)=(MRN-1) conflicts with existing key (mrn)=(MRN-2).",
            'conflicting key value violates exclusion constraint "x"\n'
            "DETAIL:  Key (mrn)=(withheld) conflicts with existing key (mrn)=(withheld).",
        ),
        (  # the value holds PostgreSQL's own closing words: it runs to the last of them
            'duplicate key value violates unique constraint "u"\n'
            "DETAIL:  Key (mrn)=(a) already exists b) already exists.",
            'duplicate key value violates unique constraint "u"\nDETAIL:  Key (mrn)=(withheld) already exists.',
        ),
        (  # a line break in the value that looks like a field of its own ends nothing
            'invalid input syntax for type date: "MRN-4\nLINE x: 1980"\nHINT:  see "datestyle".',
            'invalid input syntax for type date: "withheld"\nHINT:  see "datestyle".',
        ),
    ],
    ids=["row-line-break", "key-line-break", "copy-column", "copy-line", "exclusion", "closing-words", "false-field"],
)
def test_a_value_is_withheld_up_to_postgresqls_next_field(message, expected):
    assert redact_database_values(message) == expected


@pytest.mark.django_db
def test_a_copy_error_from_postgresql_keeps_none_of_the_rows_values():
    """What psycopg raises for the loader's COPY (apps/clinical/loader.py) with a bad birth date and a short row."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE n1_copy (mrn text, birth date)")
        messages = []
        for row in (("MRN-5\nX", "1980-13-45"), ("MRN-6 Ada Ode",)):
            cursor.execute("SAVEPOINT n1")
            try:
                with cursor.cursor.copy("COPY n1_copy (mrn, birth) FROM STDIN") as copy:
                    copy.write("\t".join(v.replace("\n", "\\n") for v in row) + "\n")
            except psycopg.Error as exc:  # DataError / BadCopyFileFormat, unwrapped, as the loader sees them
                messages.append(str(exc))
            cursor.execute("ROLLBACK TO SAVEPOINT n1")
    assert len(messages) == 2 and all("CONTEXT:  COPY n1_copy, line 1" in m for m in messages), messages
    for message in messages:
        redacted = redact_database_values(message)
        assert not any(value in redacted for value in ("1980-13-45", "MRN-5", "MRN-6", "Ada")), redacted


def test_each_exception_of_a_chained_traceback_keeps_its_own_words():
    message = 'duplicate key value violates unique constraint "u"\nDETAIL:  Key (a, b)=(x, MRN-3) already exists.'
    traceback = (
        f'Traceback (most recent call last):\n  File "a.py", line 1, in f\npsycopg.errors.UniqueViolation: {message}\n'
        "\nThe above exception was the direct cause of the following exception:\n\n"
        'Traceback (most recent call last):\n  File "b.py", line 2, in g(x)\n'
        f"django.db.utils.IntegrityError: {message}\n"
    )
    redacted = redact_database_values(traceback)
    assert "MRN-3" not in redacted
    assert redacted.count("Key (a, b)=(withheld) already exists.") == 2
    assert "The above exception was the direct cause" in redacted and "line 2, in g(x)" in redacted


def test_a_marker_without_a_value_leaves_the_line_alone():
    for line in ("invalid input syntax for type json", "Key (a) has no values", "value 3 is out of range"):
        assert redact_database_values(line) == line


class _CountedText(str):
    """A text that counts the characters str.find/rfind/`in` look at: the scan's work, without a clock."""

    looked_at = 0

    def find(self, sub, start=0, end=None):
        end = len(self) if end is None else end
        found = super().find(sub, start, end)
        type(self).looked_at += (found + len(sub) if found >= 0 else end) - start
        return found

    def rfind(self, sub, start=0, end=None):
        end = len(self) if end is None else end
        found = super().rfind(sub, start, end)
        type(self).looked_at += end - (found if found >= 0 else start)
        return found

    def __contains__(self, sub):
        type(self).looked_at += len(self)
        return super().__contains__(sub)


def _work(text: str) -> int:
    _CountedText.looked_at = 0
    redact_database_values(_CountedText(text))
    return _CountedText.looked_at


# Lines a caller can put in a Host header, each repeating a marker with what would make a search restart.
_CRAFTED = [
    "Key (" + "a)=(" * 2040,
    "Key (" * 1600,
    "Key (a)=(" + "b) already exists " * 500,
    "Failing row contains (" * 400,
    "invalid input syntax for " * 330,
    'invalid input syntax for x: "' * 280,
    'value "' * 1200,
    "CONTEXT:  COPY " * 550,
    "Key (a)=(b\nLINE 1x" * 800,
    "Key (a)=(b) conflicts with existing key (" * 200,
]


def test_the_scan_never_uses_a_regular_expression_the_count_cannot_see():
    # The linearity below is counted through str's searches; a regex over the line (14657c7's `Key \(.*?\)=\(.*?\)
    # (?=...)` took 0.4 s of CPU on an 8 KB Host header, 7.6 s on 64 KB) would do its work unseen.
    assert not [name for name, value in vars(log_filters).items() if isinstance(value, re.Pattern)]


@pytest.mark.parametrize("crafted", _CRAFTED, ids=range(len(_CRAFTED)))
def test_the_scan_looks_at_each_character_a_bounded_number_of_times(crafted):
    small, large = crafted, crafted * 8  # ~8 KB and ~64 KB
    assert len(large) > 60_000
    # Every literal the scan searches for may pass over the line once, and no more.
    assert _work(large) <= 40 * len(large)
    assert _work(large) <= 9 * _work(small)


def test_a_64_kb_crafted_line_is_redacted_whole():
    redacted = redact_database_values("Invalid HTTP_HOST header: 'Key (" + "a)=(" * 16_000 + "'.")
    assert redacted == "Invalid HTTP_HOST header: 'Key (a)=(withheld)"
