"""`manage.py bench run|check <plan>` with a key that is digits to str.isdigit but no number to int (a
superscript "²" typed or pasted for 2) ended in a ValueError traceback; it is "No benchmark plan", as any
other key no plan has, and a plan named so is found by its name."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.benchmarks.models import BenchmarkPlan
from apps.services.models import Service

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("action", ["run", "check"])
def test_a_key_of_digits_that_are_no_number_is_no_plan(action):
    with pytest.raises(CommandError, match="No benchmark plan '²'"):
        call_command("bench", action, "²", stdout=StringIO(), stderr=StringIO())


def test_a_plan_named_with_such_digits_is_found_by_its_name():
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    BenchmarkPlan.objects.create(name="²", service=service)
    with pytest.raises(CommandError, match="has no finished run"):
        call_command("bench", "check", "²", stdout=StringIO(), stderr=StringIO())
