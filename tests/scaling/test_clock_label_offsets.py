"""clock_label for zones without abbreviations: a fixed-offset zone (Etc/GMT+5) was named by Django's offset
name (`09:00 UTC-05 (-05)`), and offsets with minutes lost their colon (`UTC+1030`, `UTC+0545`)."""

import zoneinfo
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from apps.scaling.charts import clock_label

AT = datetime(2026, 4, 4, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "label"),
    [
        ("Etc/GMT+5", "09:00 UTC-05 (Etc/GMT+5)"),
        ("Australia/Lord_Howe", "01:00 UTC+11 (Australia/Lord_Howe)"),
        ("Asia/Kathmandu", "19:45 UTC+05:45 (Asia/Kathmandu)"),
        ("America/Sao_Paulo", "11:00 UTC-03 (America/Sao_Paulo)"),
        ("America/New_York", "10:00 EDT (America/New_York)"),
        ("UTC", "14:00 UTC"),
    ],
)
def test_an_hour_names_its_offset_and_zone_once(zone, label):
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        assert clock_label(AT) == label


def test_a_half_hour_offset_has_its_colon():
    with timezone.override(zoneinfo.ZoneInfo("Australia/Lord_Howe")):
        assert clock_label(datetime(2026, 4, 4, 15, tzinfo=UTC)) == "01:30 UTC+10:30 (Australia/Lord_Howe)"
