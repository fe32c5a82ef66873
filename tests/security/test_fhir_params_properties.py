"""Property tests (hypothesis) of the FHIR search-parameter parsers: any text either parses or is a
FhirParamError (a 400 OperationOutcome), never another exception; what parses means what it says."""

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from apps.clinical.fhir.params import (
    MAX_COUNT,
    FhirParamError,
    birthdate_condition,
    decode_cursor,
    encode_cursor,
    parse_birthdate,
    parse_count,
    parse_date,
    parse_reference,
    parse_tokens,
)

ANY_TEXT = st.text(max_size=80)


def _parses_or_refuses(call, *args) -> object:
    try:
        return call(*args)
    except FhirParamError:
        return None


@given(ANY_TEXT)
def test_any_text_is_parsed_or_refused_by_every_parser(raw):
    _parses_or_refuses(parse_tokens, "code", raw)
    _parses_or_refuses(parse_reference, "patient", raw, "Patient")
    _parses_or_refuses(parse_count, raw, 10)
    _parses_or_refuses(parse_date, "date", raw)
    _parses_or_refuses(parse_birthdate, raw)
    _parses_or_refuses(birthdate_condition, raw)
    _parses_or_refuses(decode_cursor, raw, 2)


@given(st.integers(min_value=1, max_value=10**12), st.booleans())
def test_references_round_trip(patient_id, qualified):
    raw = f"Patient/{patient_id}" if qualified else str(patient_id)
    assert parse_reference("patient", raw, "Patient") == patient_id


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_counts_are_bounded(count):
    parsed = _parses_or_refuses(parse_count, str(count), 10)
    assert parsed == count if 1 <= count <= MAX_COUNT else parsed is None


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(["eq", "ge", "le", "gt", "lt", ""]),
    st.sampled_from(["year", "month", "day", "minute", "second"]),
)
def test_dates_stand_for_the_interval_their_precision_implies(moment, prefix, precision):
    text = {
        "year": moment.strftime("%Y"),
        "month": moment.strftime("%Y-%m"),
        "day": moment.strftime("%Y-%m-%d"),
        "minute": moment.strftime("%Y-%m-%dT%H:%MZ"),
        "second": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }[precision]
    parsed_prefix, start, end = parse_date("date", prefix + text)
    assert parsed_prefix == (prefix or "eq")
    assert start <= moment.replace(microsecond=0) < end
    assert end - start <= timedelta(days=366)


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)))
def test_birthdates_are_exact_days(day):
    assert parse_birthdate(day.isoformat()) == day
    assert _parses_or_refuses(parse_birthdate, day.strftime("%Y-%m")) is None


@given(st.lists(st.one_of(st.integers(), st.text(max_size=20)), min_size=1, max_size=4))
def test_cursors_round_trip_and_refuse_the_wrong_length(values):
    cursor = encode_cursor(values)
    assert decode_cursor(cursor, len(values)) == values
    assert _parses_or_refuses(decode_cursor, cursor, len(values) + 1) is None
