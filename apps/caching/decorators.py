"""`@cached(namespace=...)`: the cache stack as a decorator, for plain functions, coroutines and methods."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from apps.caching.defaults import namespace_check, ttl_check
from apps.caching.stack import CacheStack, default_stack

_NOT_A_CALL = object()


def cached(
    namespace: str,
    *,
    scope: Callable[..., str | None] | None = None,
    ttl: int | None = None,
    stack: Callable[[], CacheStack] = default_stack,
) -> Callable:
    """Cache a function's result under its qualified name and arguments.

    Arguments are keyed as the function sees them (bound to its signature, defaults filled in), so
    `f(5)`, `f(patient_id=5)` and `f(5, limit=10)` with `limit=10` the default share one entry. A
    method's `self` is a key part like any argument: its class must give it a text (`__str__` or
    `__repr__`) that names the state the result depends on, or the call is refused (TypeError). Keyed by
    its class alone, Summarizer(patient 1) and Summarizer(patient 2) would share one entry: one patient's
    data served for another. Arguments become HMAC'd key parts, so identifiers among them never reach a
    store.

    `scope(*args, **kwargs)` names what a write invalidates (e.g. `lambda patient_id: f"patient:{patient_id}"`);
    `ttl` shortens the namespace policy's TTL for this function (never lengthens it: an admin's shorter
    TTL still holds).
    """
    namespace_check(namespace)  # at import, rather than at the first read
    ttl_check(ttl)

    def decorate(function: Callable) -> Callable:
        name = f"{function.__module__}.{function.__qualname__}"
        signature = inspect.signature(function)
        parameters = list(signature.parameters.values())
        # The common call, positional arguments only to a plain signature, skips bind() (as long as an
        # L1 hit): it binds as bind() would.
        plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in parameters)
        defaults = [p.default for p in parameters]
        required = sum(p.default is p.empty for p in parameters)

        def key_parts(args: tuple, kwargs: dict) -> list[Any] | object:
            if plain and not kwargs and required <= len(args) <= len(parameters):
                values = [*args, *defaults[len(args) :]]
            else:
                try:
                    bound = signature.bind(*args, **kwargs)
                except TypeError:
                    return _NOT_A_CALL  # the function itself says what is wrong with the call
                bound.apply_defaults()
                values = list(bound.arguments.values())  # in the signature's order: positions are names
            return [name, *values]

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args, **kwargs):
                parts = key_parts(args, kwargs)
                if parts is _NOT_A_CALL:
                    return await function(*args, **kwargs)
                return await stack().aget_or_load(
                    namespace,
                    parts,
                    lambda: function(*args, **kwargs),
                    scope=scope(*args, **kwargs) if scope else None,
                    ttl=ttl,
                )

            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            parts = key_parts(args, kwargs)
            if parts is _NOT_A_CALL:
                return function(*args, **kwargs)
            return stack().get_or_load(
                namespace,
                parts,
                lambda: function(*args, **kwargs),
                scope=scope(*args, **kwargs) if scope else None,
                ttl=ttl,
            )

        return wrapper

    return decorate
