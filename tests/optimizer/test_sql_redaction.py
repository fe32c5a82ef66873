"""redact_sql against PostgreSQL's lexical rules: every literal and comment goes, quoted identifiers and $n
parameters stay. A table of the cases a reviewer found, then statements generated from tokens by hypothesis,
whose redacted form is known token by token."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.optimizer.database import redact_sql

CASES = [
    # The reviewer's: a backslash-escaped quote in an E'' string ended it early, quoting the rest of the name
    # and the start of the MRN that followed.
    (r"SELECT id FROM p WHERE name = E'O\'Brien' AND mrn = 'MRN-0042'", "SELECT id FROM p WHERE name = ? AND mrn = ?"),
    # A quote inside a quoted identifier opened a string that swallowed the next literal's quote.
    ("""SELECT "it's" FROM t WHERE mrn = 'S200-11'""", """SELECT "it's" FROM t WHERE mrn = ?"""),
    ('SELECT "a""b" FROM t', 'SELECT "a""b" FROM t'),
    # Comments were kept as written.
    ("/* lookup MRN-0042 */ SELECT 1", "/*?*/ SELECT ?"),
    ("SELECT 1 -- for MRN-0042\nFROM t", "SELECT ? --?\nFROM t"),
    ("/* outer /* MRN-1 */ MRN-2 */ SELECT x", "/*?*/ SELECT x"),  # PostgreSQL's comments nest
    ("SELECT a */* MRN-3 */ b", "SELECT a */*?*/ b"),
    # Standard strings: '' is a quote, a backslash is a character.
    ("SELECT 'O''Brien', 'C:\\' , 'MRN-4'", "SELECT ?, ? , ?"),
    (r"SELECT e'a\\', 'MRN-5'", "SELECT ?, ?"),
    ("SELECT N'x', B'1010', X'1F', U&'d\\0061t' UESCAPE '!'", "SELECT ?, ?, ?, ? UESCAPE ?"),
    ('SELECT U&"d\\0061t" FROM t', 'SELECT U&"d\\0061t" FROM t'),
    # Dollar quotes, with and without a tag; a $ inside an identifier starts nothing.
    ("SELECT $$O'Brien$$, $t$ $$ MRN-6 $t$, a$b$ FROM t", "SELECT ?, ?, a$b$ FROM t"),
    ("SELECT $q$ $Q$ MRN-7 $q$", "SELECT ?"),
    # Numbers, not digits inside names or parameters.
    ("SELECT col1, t2.x FROM t2 WHERE id = 40017 AND v > 1.5e-3 AND w < .5 AND $1 = $12",
     "SELECT col1, t2.x FROM t2 WHERE id = ? AND v > ? AND w < ? AND $1 = $12"),
    ("SELECT 0x1F, 1_000_000", "SELECT ?, ?"),
    # Unterminated: redacted to the end, never quoted.
    ("SELECT 'MRN-8", "SELECT ?"),
    ("SELECT $$MRN-9", "SELECT ?"),
    ("SELECT 1 /* MRN-10", "SELECT ? /*?*/"),
    ("""SELECT "x 'MRN-11'""", 'SELECT "?'),
]  # fmt: skip


@pytest.mark.parametrize(("text", "redacted"), CASES)
def test_literals_and_comments_are_redacted_identifiers_kept(text, redacted):
    assert redact_sql(text) == redacted


# Tokens of a statement with what each becomes. Tokens are joined by a space, as a lexer would split them.
_words = st.sampled_from(["SELECT", "FROM", "WHERE", "mrn", "e", "E", "n", "x", "b", "u", "U", "t1", "a$b", "_x9"])
_operators = st.sampled_from(["=", "(", ")", ",", "::", ";", "<>", "+", "-", "*", "/", ".", "&"])
_parameters = st.integers(1, 99).map(lambda n: f"${n}")
_body = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


def _dollar(body: str, tag: str) -> str | None:
    quoted = f"${tag}${body}${tag}$"
    return quoted if quoted.find(f"${tag}$", len(tag) + 2) == len(tag) + 2 + len(body) else None


def _escaped(body: str, doubled: bool) -> str:
    return body.replace("\\", "\\\\").replace("'", "''" if doubled else "\\'")


_literals = st.one_of(
    _body.map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.tuples(st.sampled_from(["E", "e"]), _body, st.booleans()).map(lambda t: f"{t[0]}'{_escaped(t[1], t[2])}'"),
    st.tuples(st.sampled_from(["N", "U&"]), _body).map(lambda t: t[0] + "'" + t[1].replace("'", "''") + "'"),
    st.tuples(_body, st.sampled_from(["", "t", "MRN_tag", "q1"])).map(lambda t: _dollar(*t)).filter(bool),
    st.integers(0, 10**12).map(str),
    st.floats(0, 1e9, allow_nan=False).map(repr),
)
_comment_body = st.text(st.characters(codec="utf-8", exclude_characters="\x00/*"), max_size=20)
_comments = st.one_of(
    _comment_body.map(lambda s: f"/*{s}*/"),
    st.tuples(_comment_body, _comment_body).map(lambda t: f"/* {t[0]} /*{t[1]}*/ */"),
)
_line_comments = st.text(st.characters(codec="utf-8", exclude_characters="\x00\n\r"), max_size=20)
_identifiers = _body.map(lambda s: '"' + s.replace('"', '""') + '"')

_tokens = st.one_of(
    st.tuples(_words, st.just(None)),
    st.tuples(_operators, st.just(None)),
    st.tuples(_parameters, st.just(None)),
    st.tuples(_identifiers, st.just(None)),
    st.tuples(_literals, st.just("?")),
    st.tuples(_comments, st.just("/*?*/")),
    st.tuples(_line_comments.map(lambda s: f"--{s}\n"), st.just("--?\n")),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_tokens, max_size=12))
def test_a_generated_statement_is_redacted_token_by_token(tokens):
    text = " ".join(token for token, _ in tokens)
    assert redact_sql(text) == " ".join(token if redacted is None else redacted for token, redacted in tokens)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_redacted_without_failing_and_a_second_pass_changes_nothing(text):
    once = redact_sql(text)
    assert redact_sql(once) == once
