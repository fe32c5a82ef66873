"""Terminology the clinical data plane knows: LOINC vital signs with UCUM units, FHIR value sets."""

from __future__ import annotations

from dataclasses import dataclass

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@dataclass(frozen=True)
class VitalSign:
    code: str
    display: str
    unit: str  # UCUM code; empty for panels, which carry no value of their own
    low: float  # what a body can measure (extremes clinicians do record), used to reject impossible writes
    high: float


# The FHIR R4 vital-signs observations (the observation-vitalsignresult value set).
VITAL_SIGNS: dict[str, VitalSign] = {
    v.code: v
    for v in (
        VitalSign(
            "85353-1", "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel", "", 0, 0
        ),
        VitalSign("9279-1", "Respiratory rate", "/min", 0, 150),
        VitalSign("8867-4", "Heart rate", "/min", 0, 350),
        VitalSign("2708-6", "Oxygen saturation in Arterial blood", "%", 0, 100),
        VitalSign("8310-5", "Body temperature", "Cel", 10, 47),
        VitalSign("8302-2", "Body height", "cm", 15, 280),
        VitalSign("9843-4", "Head Occipital-frontal circumference", "cm", 15, 90),
        VitalSign("29463-7", "Body weight", "kg", 0.2, 700),
        VitalSign("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 5, 250),
        VitalSign("85354-9", "Blood pressure panel with all children optional", "", 0, 0),
        VitalSign("8480-6", "Systolic blood pressure", "mm[Hg]", 0, 350),
        VitalSign("8462-4", "Diastolic blood pressure", "mm[Hg]", 0, 250),
        VitalSign("8478-0", "Mean blood pressure", "mm[Hg]", 0, 300),
    )
}
VITAL_PANEL = "85353-1"
BP_PANEL = "85354-9"
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"
MEAN_BP = "8478-0"
# The panels: no value of their own (no unit), only components or member readings.
PANEL_CODES = frozenset(code for code, sign in VITAL_SIGNS.items() if not sign.unit)
# A panel's members (FHIR hasMember), among the vital signs taken at its instant; None: every one but itself.
PANEL_MEMBER_CODES: dict[str, frozenset[str] | None] = {
    VITAL_PANEL: None,
    BP_PANEL: frozenset({SYSTOLIC, DIASTOLIC, MEAN_BP}),
}

# A few common laboratory results, so the laboratory category is not empty.
LABORATORY: dict[str, VitalSign] = {
    v.code: v
    for v in (
        VitalSign("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 1, 3000),
        VitalSign("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.01, 50),
        VitalSign("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 0.5, 30),
        VitalSign("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 0.5, 15),
        VitalSign("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 0, 1500),
    )
}

OBSERVATION_CODES = {**VITAL_SIGNS, **LABORATORY}

# Synthetic prescriptions (RxNorm clinical drugs) with their usual sig.
MEDICATIONS: tuple[tuple[str, str, str], ...] = (
    ("197361", "amlodipine 5 MG Oral Tablet", "5 mg by mouth once daily"),
    ("314076", "lisinopril 10 MG Oral Tablet", "10 mg by mouth once daily"),
    ("861007", "metformin hydrochloride 500 MG Oral Tablet", "500 mg by mouth twice daily with meals"),
    ("198211", "simvastatin 40 MG Oral Tablet", "40 mg by mouth at bedtime"),
    ("313782", "acetaminophen 325 MG Oral Tablet", "650 mg by mouth every 6 hours as needed for pain"),
    ("310965", "ibuprofen 200 MG Oral Tablet", "400 mg by mouth every 8 hours as needed"),
    ("855332", "warfarin sodium 5 MG Oral Tablet", "5 mg by mouth daily, adjust to INR"),
    ("198440", "acetaminophen 500 MG Oral Tablet", "1 g by mouth every 8 hours as needed"),
    ("1361615", "heparin sodium 5000 UNT/ML Injectable Solution", "5000 units subcutaneously every 12 hours"),
    ("313850", "ondansetron 4 MG Disintegrating Oral Tablet", "4 mg by mouth every 8 hours as needed for nausea"),
)
