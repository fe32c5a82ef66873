"""Input and output serializers of the clinical REST API, one pair per endpoint."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.clinical.codes import OBSERVATION_CODES, PANEL_CODES, VITAL_SIGNS
from apps.clinical.identifiers import MAX_SYSTEM_LENGTH
from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient
from apps.clinical.services import validate_search_term
from apps.core.api.fields import StrictCharField
from apps.core.api.numbers import StrictFloatField, StrictIntegerField
from apps.core.api.params import MAX_ID, InstantField, SinceUntilMixin


def _codes(value: str, known: dict) -> list[str]:
    codes = [code.strip() for code in value.split(",") if code.strip()]
    unknown = [code for code in codes if code not in known]
    if unknown:
        raise serializers.ValidationError(f"Unknown LOINC code(s): {', '.join(unknown)}.")
    if not codes:
        raise serializers.ValidationError("Give at least one LOINC code.")
    return codes


# --- patients -------------------------------------------------------------------------------------
class PatientLookupInputSerializer(serializers.Serializer):
    mrn = StrictCharField(max_length=64)
    system = StrictCharField(max_length=MAX_SYSTEM_LENGTH, required=False)


class PatientSearchInputSerializer(serializers.Serializer):
    name = StrictCharField(max_length=100, required=False)
    family = StrictCharField(max_length=100, required=False)
    given = StrictCharField(max_length=100, required=False)
    birth_date = serializers.DateField(required=False)
    page_size = StrictIntegerField(min_value=1, max_value=1000, required=False)

    def validate(self, attrs: dict) -> dict:
        for field in ("name", "family", "given"):
            if field in attrs:
                try:
                    validate_search_term(field, attrs[field])
                except DjangoValidationError as exc:
                    raise serializers.ValidationError(exc.message_dict) from exc
        return attrs


class PatientWindowInputSerializer(PatientSearchInputSerializer):
    page_size = None
    offset = StrictIntegerField(min_value=0, max_value=100_000_000, default=0)
    limit = StrictIntegerField(min_value=1, max_value=500, default=100)


class PatientCreateInputSerializer(serializers.Serializer):
    mrn = StrictCharField(max_length=64)
    system = StrictCharField(max_length=MAX_SYSTEM_LENGTH, required=False)
    family_name = StrictCharField(max_length=100)
    given_name = StrictCharField(max_length=100)
    birth_date = serializers.DateField()
    sex = serializers.ChoiceField(choices=Patient.Sex.choices, default=Patient.Sex.UNKNOWN)


class PatientOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "identifier_system", "mrn", "family_name", "given_name", "birth_date", "sex", "updated_at"]


# --- observations ---------------------------------------------------------------------------------
class VitalsInputSerializer(SinceUntilMixin, serializers.Serializer):
    code = StrictCharField(required=False, help_text="Comma-separated LOINC codes.")
    since = InstantField(required=False, day_starts=True)
    until = InstantField(required=False, day_starts=True)
    latest = serializers.BooleanField(required=False, default=False, help_text="Only the newest of each code.")
    limit = StrictIntegerField(required=False, min_value=1, max_value=1000, default=100,
                                     help_text="The newest N; not with latest=true.")  # fmt: skip

    def validate_code(self, value: str) -> list[str]:
        return _codes(value, VITAL_SIGNS)

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        # The latest of each code is one row a code, not the newest N: a limit given with it would be dropped.
        if attrs["latest"] and "limit" in self.initial_data:
            raise serializers.ValidationError({"limit": "Not with latest=true, which answers one row per code."})
        return attrs


class ObservationOutputSerializer(serializers.ModelSerializer):
    display = serializers.SerializerMethodField()
    panel = serializers.SerializerMethodField(
        help_text=f"A panel ({', '.join(sorted(PANEL_CODES))}): no value of its own, its readings in `components` "
        "or `members`. A null `value` of a row that is no panel is a missing value."
    )
    members = serializers.SerializerMethodField(
        help_text="A panel with no value and no components (the vital-signs panel 85353-1 as loaded): the ids of "
        "its readings, the vital signs taken at its instant (FHIR's hasMember; [] when none are). Null for any "
        "other row, and in a write's answer."
    )

    class Meta:
        model = Observation
        fields = ["id", "category", "code", "display", "value", "unit", "components", "effective_at", "status",
                  "encounter_id", "panel", "members"]  # fmt: skip

    def get_display(self, observation: Observation) -> str:
        known = OBSERVATION_CODES.get(observation.code)
        return known.display if known else ""

    def get_panel(self, observation: Observation) -> bool:
        return observation.code in PANEL_CODES

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField(), allow_null=True))
    def get_members(self, observation: Observation) -> list[int] | None:
        return None  # documentation: the answers are built in representations.observation_json


class ObservationCreateInputSerializer(serializers.Serializer):
    code = StrictCharField(max_length=16)
    value = StrictFloatField()
    unit = StrictCharField(max_length=16, required=False)
    effective_at = InstantField()
    status = serializers.ChoiceField(choices=Observation.Status.choices, default=Observation.Status.FINAL)
    encounter_id = StrictIntegerField(required=False, min_value=1, max_value=MAX_ID,
                                            help_text="One of this patient's encounters.")  # fmt: skip


class ObservationRetractInputSerializer(serializers.Serializer):
    """A reading is retracted, never edited: its status to entered-in-error is the one change accepted."""

    status = serializers.ChoiceField(
        choices=[Observation.Status.ENTERED_IN_ERROR],
        error_messages={"invalid_choice": "Only entered-in-error: a reading is retracted, not edited."},
    )


# --- encounters and medications -------------------------------------------------------------------
class EncounterListInputSerializer(SinceUntilMixin, serializers.Serializer):
    status = serializers.ChoiceField(choices=Encounter.Status.choices, required=False)
    since = InstantField(required=False, day_starts=True)
    until = InstantField(required=False, day_starts=True)
    page_size = StrictIntegerField(min_value=1, max_value=1000, required=False)


class EncounterOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Encounter
        fields = ["id", "encounter_class", "status", "period_start", "period_end"]


class MedicationListInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=MedicationRequest.Status.choices, required=False)
    intent = serializers.ChoiceField(choices=MedicationRequest.Intent.choices, required=False)
    page_size = StrictIntegerField(min_value=1, max_value=1000, required=False)


class MedicationOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = MedicationRequest
        fields = ["id", "rxnorm_code", "display", "status", "intent", "authored_at", "dosage_text", "encounter_id"]
