"""The patient id in a REST URL, spelt one way only."""

from __future__ import annotations

import re

from apps.clinical.fhir.params import ID_PATTERN


class PatientIdConverter:
    """Digits that fit a bigint (as `<id:...>` takes them), as the id when written as the server writes it, and
    None for another spelling (`007`, `0`): the view answers that as an unknown id, audited, so one patient
    has one URL (one cache key, one resource id in the trail) as in FHIR, where `Patient/007` is not
    `Patient/7`."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int | None:
        return int(value) if re.fullmatch(ID_PATTERN, value) else None

    def to_url(self, value: int) -> str:
        return str(value)
