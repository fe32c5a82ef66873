"""The rate limits overview's documented shape says what the selector does (300e72a): scopes with the most
429s come first, then by priority and scope (the schema said "By priority, then scope."), and the busiest
client is the one that attempted most (admitted and refused), not the one admitted most."""

from __future__ import annotations

from apps.ratelimits.api.schema import RateLimitOverviewOutputSerializer, RateLimitUsageOutputSerializer


def _help(serializer, name: str) -> str:
    return str(serializer.fields[name].help_text)


def test_the_results_order_is_documented_as_most_429s_first_then_priority_and_scope():
    text = _help(RateLimitOverviewOutputSerializer(), "results")
    assert "429" in text  # the old text: "By priority, then scope."
    assert text.index("429") < text.index("priority") < text.rindex("scope")


def test_the_busiest_client_is_documented_as_named_by_its_attempts():
    usage = RateLimitUsageOutputSerializer()
    assert "attempted" in _help(usage, "busiest_client")
    assert "admitted or not" in _help(usage, "busiest_client_attempted")
    # The admitted figures are documented as what they are, not as what ranks the client.
    for name in ("busiest_client_per_minute", "busiest_client_share"):
        assert "busiest_client_attempted" in _help(usage, name), name
