"""Values shared by the tests that load synthetic clinical data."""

from datetime import UTC, datetime

LOAD_END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # where the synthetic loads' history ends
