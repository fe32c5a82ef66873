"""Deterministic, realistic synthetic patients: the same seed and index always give the same patient.

Vital signs follow a per-patient baseline (age and sex dependent), a circadian rhythm, AR(1) noise
and occasional fever episodes; blood pressure comes as systolic, diastolic, mean and the BP panel;
weight daily, height and BMI on admission, head circumference for infants; a daily lab panel; a
few RxNorm prescriptions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple

from apps.clinical.codes import BP_PANEL, DIASTOLIC, LABORATORY, MEDICATIONS, SYSTOLIC, VITAL_PANEL, VITAL_SIGNS

FAMILY_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera "
    "Campbell Mitchell Carter Roberts Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann "
    "Dubois Lefèvre Moreau Laurent Rossi Russo Ferrari Esposito Bianchi Kowalski Nowak Novák Jensen Nielsen "
    "Hansen Johansson Andersson Virtanen Korhonen Murphy Kelly O'Brien Walsh Silva Santos Oliveira Costa Tanaka "
    "Suzuki Sato Kim Park Choi Chen Wang Li Zhang Patel Shah Singh Kumar"
).split()
GIVEN_NAMES = {
    "female": "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Nancy Lisa Betty Margaret "
    "Sandra Ashley Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Rebecca Laura Sophie Anna Léa Chloé "
    "Giulia Sofia Maja Emma Olivia Aiko Yuna Mei Priya Ana".split(),
    "male": "James Robert John Michael David William Richard Joseph Thomas Charles Christopher Daniel Matthew "
    "Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Lukas Jonas Hugo "
    "Louis Lorenzo Matteo Jakub Oliver Noah Liam Haruto Wei Arjun José".split(),
}


@dataclass
class PatientRecord:
    index: int
    mrn: str
    family_name: str
    given_name: str
    birth_date: date
    sex: str


@dataclass
class EncounterRecord:
    encounter_class: str
    status: str
    period_start: datetime
    period_end: datetime | None


@dataclass(slots=True)
class ObservationRecord:
    category: str
    code: str
    value: float | None
    unit: str
    components: str | None  # JSON text, ready for COPY
    effective_at: datetime
    status: str = "final"


@dataclass
class MedicationRecord:
    rxnorm_code: str
    display: str
    status: str
    intent: str
    authored_at: datetime
    dosage_text: str


@dataclass
class SyntheticPatient:
    patient: PatientRecord
    encounter: EncounterRecord
    observations: list[ObservationRecord] = field(default_factory=list)
    medications: list[MedicationRecord] = field(default_factory=list)


def synthetic_mrn(seed: int, index: int) -> str:
    return f"S{seed:03d}-{index:07d}"


def _unit(code: str) -> str:
    return VITAL_SIGNS[code].unit if code in VITAL_SIGNS else LABORATORY[code].unit


def generate_patient(*, seed: int, index: int, end: datetime, days: int, rounds_per_day: int) -> SyntheticPatient:
    """One patient and the clinical history of the `days` before `end`."""
    rng = random.Random(f"{seed}:{index}")
    sex = "female" if rng.random() < 0.51 else "male"
    age_years = _age_years(rng)
    start = end - timedelta(days=days)
    # Born before the history starts (its encounter may begin a day early): a history longer than an infant's
    # life (--days 60) otherwise began before the birth date. The age is then the age on admission.
    birth_date = min((end - timedelta(days=age_years * 365.25)).date(), (start - timedelta(days=1)).date())
    patient = PatientRecord(
        index=index,
        mrn=synthetic_mrn(seed, index),
        family_name=rng.choice(FAMILY_NAMES),
        given_name=rng.choice(GIVEN_NAMES[sex]),
        birth_date=birth_date,
        sex=sex,
    )

    admitted = rng.random() < 0.35
    discharged_at = None if admitted else end - timedelta(hours=rng.uniform(1, 12))
    encounter = EncounterRecord(
        encounter_class="IMP" if admitted or rng.random() < 0.5 else rng.choice(("OBSENC", "EMER")),
        status="in-progress" if admitted else "finished",
        period_start=start - timedelta(hours=rng.uniform(0, 24)),
        period_end=discharged_at,
    )
    record = SyntheticPatient(patient=patient, encounter=encounter)
    # A discharged patient is charted no later than the discharge: nothing after the encounter's end.
    charted_until = discharged_at or end

    child = age_years < 18
    infant = age_years < 3
    hr_base = rng.gauss(120 if infant else 95 if child else 74, 8)
    rr_base = rng.gauss(30 if infant else 20 if child else 15, 2)
    spo2_base = min(99.5, rng.gauss(97.3, 1.2))
    temp_base = rng.gauss(36.8, 0.25)
    sbp_base = rng.gauss(95 if child else 112 + 0.45 * age_years, 11)
    dbp_base = sbp_base * rng.uniform(0.58, 0.7)
    height = _height(rng, age_years, sex)
    bmi = max(13.0, rng.gauss(17 if child else 26.5, 3.5))
    weight = bmi * (height / 100) ** 2
    head = rng.gauss(35 + 12 * math.log1p(age_years * 2) / math.log(7), 1.2) if infant else None
    fever_day = rng.randrange(days) if rng.random() < 0.12 else None

    add = record.observations.append
    add(ObservationRecord("vital-signs", "8302-2", round(height, 1), "cm", None, encounter.period_start))
    add(ObservationRecord("vital-signs", "39156-5", round(bmi, 1), "kg/m2", None, encounter.period_start))

    # The hot loop of a long history (10 years: 16 observations a day): codes, units and the lab profile are
    # looked up once, not per observation; the draws and their order are the same, so a seed gives the same data.
    gauss, uniform = rng.gauss, rng.uniform
    step = timedelta(hours=24 / rounds_per_day)
    offsets = [step * round_index for round_index in range(rounds_per_day)]
    six_hours = timedelta(hours=6)
    n_hr = n_rr = n_sbp = n_spo2 = n_temp = 0.0
    for day in range(days):
        day_start = start + timedelta(days=day)
        fever = 1.0 if day == fever_day else 0.0
        for offset in offsets:
            at = day_start + offset + timedelta(minutes=uniform(-20, 20))
            if at > charted_until:
                continue
            circadian = math.sin(2 * math.pi * (at.hour + at.minute / 60 - 10) / 24)
            # AR(1): today's deviation remembers yesterday's (drawn in this order: hr, rr, sbp, spo2, temp).
            n_hr = 0.7 * n_hr + gauss(0, 1)
            n_rr = 0.7 * n_rr + gauss(0, 1)
            n_sbp = 0.7 * n_sbp + gauss(0, 1)
            n_spo2 = 0.7 * n_spo2 + gauss(0, 1)
            n_temp = 0.7 * n_temp + gauss(0, 1)
            hr = hr_base + 5 * circadian + 3 * n_hr + 16 * fever
            rr = rr_base + 0.8 * n_rr + 4 * fever
            spo2 = min(100.0, spo2_base + 0.6 * n_spo2 - 1.5 * fever)
            temp = temp_base + 0.25 * circadian + 0.1 * n_temp + 1.6 * fever
            sbp = sbp_base + 4 * circadian + 5 * n_sbp
            dbp = dbp_base + 2.5 * circadian + 3 * n_sbp * 0.6
            mean_bp = dbp + (sbp - dbp) / 3
            systolic, diastolic = float(round(sbp)), float(round(dbp))
            add(ObservationRecord(VITAL, "8867-4", float(round(hr)), HR_UNIT, None, at))
            add(ObservationRecord(VITAL, "9279-1", float(round(rr)), RR_UNIT, None, at))
            add(ObservationRecord(VITAL, "2708-6", round(spo2, 1), SPO2_UNIT, None, at))
            add(ObservationRecord(VITAL, "8310-5", round(temp, 1), TEMP_UNIT, None, at))
            add(ObservationRecord(VITAL, SYSTOLIC, systolic, SYSTOLIC_UNIT, None, at))
            add(ObservationRecord(VITAL, DIASTOLIC, diastolic, DIASTOLIC_UNIT, None, at))
            add(ObservationRecord(VITAL, "8478-0", float(round(mean_bp)), MEAN_BP_UNIT, None, at))
            # What json.dumps({SYSTOLIC: ..., DIASTOLIC: ...}) writes (floats as repr), without its per-call cost.
            components = f'{{"{SYSTOLIC}": {systolic!r}, "{DIASTOLIC}": {diastolic!r}}}'
            add(ObservationRecord(VITAL, BP_PANEL, None, "", components, at))
            add(ObservationRecord(VITAL, VITAL_PANEL, None, "", None, at))
        morning = day_start + six_hours + timedelta(minutes=uniform(0, 60))
        if morning <= charted_until:
            weight += gauss(0, 0.15)
            add(ObservationRecord(VITAL, "29463-7", round(weight, 1), "kg", None, morning))
            if head is not None:
                add(ObservationRecord(VITAL, "9843-4", round(head, 1), "cm", None, morning))
            for code, mean, sd, low, unit in _LABS:
                value = max(low, gauss(mean, sd) * (1.3 if fever and code == "6690-2" else 1))
                add(ObservationRecord("laboratory", code, round(value, 2), unit, None, morning))

    for rxnorm, display, sig in rng.sample(MEDICATIONS, k=rng.randint(0, 4)):
        authored = encounter.period_start + timedelta(hours=rng.uniform(0, 24 * days))
        status = "active" if admitted or rng.random() < 0.6 else rng.choice(("completed", "stopped"))
        record.medications.append(MedicationRecord(rxnorm, display, status, "order", min(authored, charted_until), sig))
    return record


LAB_PROFILE = {
    "2345-7": (105, 25),  # glucose mg/dL
    "2160-0": (0.95, 0.25),  # creatinine mg/dL
    "718-7": (13.5, 1.6),  # hemoglobin g/dL
    "2823-3": (4.2, 0.4),  # potassium mmol/L
    "6690-2": (7.5, 2.0),  # leukocytes 10*3/uL
}
_LABS = tuple((code, mean, sd, LABORATORY[code].low, _unit(code)) for code, (mean, sd) in LAB_PROFILE.items())
VITAL = "vital-signs"
HR_UNIT, RR_UNIT, SPO2_UNIT, TEMP_UNIT = (_unit(code) for code in ("8867-4", "9279-1", "2708-6", "8310-5"))
SYSTOLIC_UNIT, DIASTOLIC_UNIT, MEAN_BP_UNIT = (_unit(code) for code in (SYSTOLIC, DIASTOLIC, "8478-0"))


class AgeBand(NamedTuple):
    percent: int
    low: float
    high: float
    bell: tuple[float, float] | None  # mean and standard deviation inside the band; None: uniform


# A general hospital's patients: newborns and infants (births), children, adults, and the over-65s who
# account for the largest share of admissions.
AGE_BANDS = (
    AgeBand(10, 0.05, 3.0, None),
    AgeBand(6, 3.0, 18.0, None),
    AgeBand(44, 18.0, 65.0, (45.0, 13.0)),
    AgeBand(40, 65.0, 100.0, (76.0, 7.0)),
)
# No patient is this old at the end of its history (the last band's bound is exclusive).
OLDEST_AGE_YEARS = AGE_BANDS[-1].high


def _age_years(rng: random.Random) -> float:
    band = rng.choices(AGE_BANDS, weights=[band.percent for band in AGE_BANDS])[0]
    age = rng.gauss(*band.bell) if band.bell else rng.uniform(band.low, band.high)
    # A bell's tail outside its band is drawn again uniformly inside it, so no age piles up at an edge.
    return age if band.low <= age < band.high else rng.uniform(band.low, band.high)


def _height(rng: random.Random, age: float, sex: str) -> float:
    if age < 2:
        return rng.gauss(50 + 25 * age, 3)
    if age < 18:
        return rng.gauss(85 + 5.8 * (age - 2), 6)
    return rng.gauss(176 if sex == "male" else 163, 7)


def generate_patients(
    *, seed: int, first_index: int, count: int, end: datetime, days: int, rounds_per_day: int
) -> Iterator[SyntheticPatient]:
    for index in range(first_index, first_index + count):
        yield generate_patient(seed=seed, index=index, end=end, days=days, rounds_per_day=rounds_per_day)
