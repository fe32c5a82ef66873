"""`@cached(namespace=...)`: the cache stack as a decorator, for plain functions and coroutines."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from apps.caching.stack import CacheStack, default_stack


def cached(
    namespace: str,
    *,
    scope: Callable[..., str | None] | None = None,
    ttl: int | None = None,
    stack: Callable[[], CacheStack] = default_stack,
) -> Callable:
    """Cache a function's result under its qualified name and arguments.

    `scope(*args, **kwargs)` names what a write invalidates (e.g. `lambda patient_id: f"patient:{patient_id}"`);
    `ttl` overrides the namespace policy's TTL for this function. Arguments become HMAC'd key parts, so
    identifiers among them never reach a store.
    """

    def decorate(function: Callable) -> Callable:
        name = f"{function.__module__}.{function.__qualname__}"

        def key_parts(args: tuple, kwargs: dict) -> list[Any]:
            return [name, list(args), kwargs]

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args, **kwargs):
                return await stack().aget_or_load(
                    namespace,
                    key_parts(args, kwargs),
                    lambda: function(*args, **kwargs),
                    scope=scope(*args, **kwargs) if scope else None,
                    ttl=ttl,
                )

            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            return stack().get_or_load(
                namespace,
                key_parts(args, kwargs),
                lambda: function(*args, **kwargs),
                scope=scope(*args, **kwargs) if scope else None,
                ttl=ttl,
            )

        return wrapper

    return decorate
