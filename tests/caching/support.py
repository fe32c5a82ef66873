"""Helpers shared by the cache's tests: a stack as another process would have it, and a policy edited as
admin edits it."""

from __future__ import annotations

from django.conf import settings

from apps.caching import services
from apps.caching.stack import CacheStack


def make_stack(redis_url: str = settings.REDIS_URL, **options) -> CacheStack:
    """A stack as another process would have it: its own L1, policies and breaker."""
    options.setdefault("poll_interval", 0.05)
    options.setdefault("subscribe", False)  # the poll alone, unless a test is about the channel
    return CacheStack.from_settings(redis_url, **options)


def set_policy(namespace: str, **fields) -> None:
    """An edit as admin makes it: saved, so every stack hears of it."""
    policy = services.cache_policy_ensure(namespace=namespace)
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.save()
