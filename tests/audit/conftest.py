import pytest

from apps.audit import services


@pytest.fixture(autouse=True)
def _forget_seals_looked_at():
    """A process remembers the head seals it looked behind (and logged as forged) for its life; tests write the same
    timestamps and so the same seals into fresh databases, where an earlier test's answer is not this one's."""
    yield
    services._SEALS_HOLDING_NO_EARLIER_STATE.clear()
    services._FORGED_HEADS_LOGGED.clear()
