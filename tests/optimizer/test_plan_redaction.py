"""What a stored PostgreSQL plan keeps: never an expression, which can quote the sample patient."""

from apps.optimizer.database import redact_plan


def test_a_stored_plan_keeps_shape_and_timings_and_drops_every_expression():
    """Only a list of keys that can hold values was dropped: a One-Time Filter, a Function Call or a Run
    Condition quoting the sample's MRN was stored as PostgreSQL wrote it."""
    plan = {
        "Node Type": "Result", "Actual Total Time": 0.01, "One-Time Filter": "('MRN-0042'::text = 'MRN-0042')",
        "Plans": [{"Node Type": "Function Scan", "Index Name": "i", "Function Call": "lookup('MRN-0042')",
                   "Run Condition": "(x = 'MRN-0042')", "Index Cond": "(mrn = 'MRN-0042')"}],
    }  # fmt: skip
    assert redact_plan(plan) == {
        "Node Type": "Result", "Actual Total Time": 0.01, "Plans": [{"Node Type": "Function Scan", "Index Name": "i"}]
    }  # fmt: skip
