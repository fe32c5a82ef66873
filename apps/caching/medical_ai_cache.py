"""The brief's cache API, on the real multi-level stack:

cache = MedicalAICache("redis://localhost:6379")
await cache.initialize()

@cache.cache_decorator(ttl=1800, namespace="patient_data")
async def get_patient_data(patient_id): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.caching.decorators import cached
from apps.caching.stack import CacheStack


class MedicalAICache:
    """A cache stack on its own Redis (L2), sharing the policies, L3 table and secrets of the project.

    Scope generations reach its Redis from its own writes and from its once-a-second poll of the
    database; give it the project's REDIS_URL (the default) to share invalidations with every process
    at once.
    """

    def __init__(self, redis_url: str | None = None):
        self.redis_url = redis_url if redis_url is not None else settings.REDIS_URL
        self.stack: CacheStack | None = None

    async def initialize(self) -> MedicalAICache:
        """Build the stack and load the policies (an unreachable Redis leaves L1 and L3 working).

        Once: called again (an app's startup hook run per worker or per test), it keeps its stack; a new
        one each time left the old one's listener thread and Redis connection behind, and its L1."""
        if self.stack is None:
            self.stack = CacheStack.from_settings(self.redis_url)  # set before the await: concurrent calls share it
            await sync_to_async(self.stack.tick)(force=True)
        return self

    def _stack(self) -> CacheStack:
        if self.stack is None:
            raise RuntimeError("call `await cache.initialize()` first")
        return self.stack

    @property
    def redis_available(self) -> bool:
        return self.stack is not None and self.stack.redis() is not None and self.stack.breaker.state == "closed"

    def cache_decorator(
        self, ttl: int | None = None, namespace: str = "ai_inference", scope: Callable[..., str | None] | None = None
    ) -> Callable:
        return cached(namespace, scope=scope, ttl=ttl, stack=self._stack)

    async def get_or_load(self, namespace: str, key_parts: list[Any], loader, **options) -> Any:
        return await self._stack().aget_or_load(namespace, key_parts, loader, **options)

    async def invalidate(self, *scopes: str) -> None:
        await sync_to_async(self._stack().invalidate_scopes)(scopes)
