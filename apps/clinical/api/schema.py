"""Documentation only: response shapes of the clinical REST API and the FHIR endpoints that no input or
output serializer describes, for the views' `@extend_schema`."""

from __future__ import annotations

from rest_framework import serializers

from apps.clinical.api.serializers import ObservationOutputSerializer, PatientOutputSerializer


class PatientWindowOutputSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="How many patients match in all.")
    offset = serializers.IntegerField()
    results = PatientOutputSerializer(many=True)


class VitalsOutputSerializer(serializers.Serializer):
    results = ObservationOutputSerializer(many=True, help_text="Newest first.")


# --- FHIR -----------------------------------------------------------------------------------------
class FhirIssueSerializer(serializers.Serializer):
    severity = serializers.CharField(help_text='"error"')
    code = serializers.CharField(help_text="FHIR issue type: invalid, not-found, forbidden, ...")
    diagnostics = serializers.CharField()
    expression = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="The search parameter at fault."
    )


class FhirOperationOutcomeSerializer(serializers.Serializer):
    resourceType = serializers.CharField(help_text='"OperationOutcome"')
    issue = FhirIssueSerializer(many=True)


class FhirBundleLinkSerializer(serializers.Serializer):
    relation = serializers.ChoiceField(choices=["self", "next"])
    url = serializers.CharField()


class FhirBundleSearchSerializer(serializers.Serializer):
    mode = serializers.CharField(help_text='"match"')


class FhirBundleEntrySerializer(serializers.Serializer):
    fullUrl = serializers.CharField(required=False, help_text="A match's URL (an outcome entry has none).")
    resource = serializers.JSONField(help_text="The FHIR resource (R4 JSON).")
    search = FhirBundleSearchSerializer()


class FhirBundleSerializer(serializers.Serializer):
    resourceType = serializers.CharField(help_text='"Bundle"')
    type = serializers.CharField(help_text='"searchset"')
    link = FhirBundleLinkSerializer(many=True, help_text="self, and next while more match.")
    entry = FhirBundleEntrySerializer(many=True, required=False, help_text="Absent where nothing matched.")
