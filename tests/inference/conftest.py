import pytest

from apps.ratelimits.models import RateLimitPolicy


@pytest.fixture
def token(issue_token) -> str:
    """An inference client's token, its scope's rate limit out of the way of a test's many calls."""
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    return issue_token("inference")
