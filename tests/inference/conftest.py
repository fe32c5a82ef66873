import pytest

from apps.ratelimits.models import RateLimitPolicy


@pytest.fixture
def token(issue_token) -> str:
    """An inference client's token, its scope's rate limit out of the way of a test's many calls."""
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    return issue_token("inference", "patient:read")


@pytest.fixture
def _let_go_of_test_models():
    """The models a test loaded (into apps.inference.serving) are let go of after it, their batchers closed."""
    from apps.inference import serving

    held = set(serving._served)
    yield
    for pk in set(serving._served) - held:
        serving._served.pop(pk).batcher.close()
