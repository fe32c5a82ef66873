"""The pieces the cache stack is built from: value codec, L1 memory tier, Redis circuit breaker, keys.

Kept free of Django models so each piece can be tested and benchmarked on its own.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PLAIN, SEALED = b"P", b"E"


class CodecError(Exception):
    """A stored value that cannot be read back (a rotated-out key, a corrupt or foreign value)."""


class ValueCodec:
    """JSON values, sealed with Fernet when the namespace asks for it. The first key seals; all open.

    JSON rather than pickle: a value read back from Redis or the database can never run code.
    """

    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @staticmethod
    def derive_key(secret: str) -> str:
        """A Fernet key derived from a server secret, for installations that set no explicit key."""
        return base64.urlsafe_b64encode(hashlib.sha256(f"cache-encryption:{secret}".encode()).digest()).decode()

    def encode(self, value: Any, *, encrypt: bool) -> bytes:
        try:
            raw = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cached values must be JSON data (dicts, lists, strings, numbers): {exc}") from exc
        return SEALED + self._fernet.encrypt(raw) if encrypt else PLAIN + raw

    def decode(self, blob: bytes) -> Any:
        kind, body = blob[:1], blob[1:]
        try:
            if kind == SEALED:
                body = self._fernet.decrypt(body)
            elif kind != PLAIN:
                raise CodecError("unknown value format")
            return json.loads(body)
        except (InvalidToken, ValueError) as exc:
            raise CodecError(str(exc) or type(exc).__name__) from exc

    def rotate(self, blob: bytes) -> bytes:
        """Re-seal a value with the current key (values sealed with an older key still open until then)."""
        if blob[:1] != SEALED:
            return blob
        return SEALED + self._fernet.rotate(blob[1:])


class KeyHasher:
    """Cache keys and scopes are HMAC-SHA256 of their parts: no identifier ever reaches Redis or the table."""

    def __init__(self, secret: str):
        self._secret = secret.encode()

    def digest(self, *parts: Any) -> str:
        message = "\x1f".join(_part(p) for p in parts).encode()
        return hmac.digest(self._secret, message, "sha256").hex()


def _part(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_part(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ",".join(f"{_part(k)}:{_part(v)}" for k, v in items) + "}"
    return f"{type(value).__name__}:{value}"


@dataclass(slots=True)
class Entry:
    """A cached value with its freshness (epoch seconds) and the scope generation it was loaded under."""

    value: Any
    generation: int
    fresh_until: float
    stale_until: float
    scope: str = ""
    size: int = 0

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until

    def is_servable_stale(self, now: float) -> bool:
        return now < self.stale_until


class MemoryTier:
    """L1: per-namespace LRU with TTL, an entry bound per namespace and a byte bound for the process."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._namespaces: dict[str, OrderedDict[str, Entry]] = {}
        self._by_scope: dict[str, set[tuple[str, str]]] = {}
        self._bytes: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str, key: str) -> Entry | None:
        entries = self._namespaces.get(namespace)
        if entries is None:
            return None
        entry = entries.get(key)
        if entry is not None:
            with contextlib.suppress(KeyError):  # dropped by another thread in between
                entries.move_to_end(key)
        return entry

    def put(self, namespace: str, key: str, entry: Entry, *, max_entries: int) -> int:
        """Store an entry; the number of entries evicted to make room."""
        evicted = 0
        with self._lock:
            entries = self._namespaces.setdefault(namespace, OrderedDict())
            old = entries.pop(key, None)
            if old is not None:
                self._forget(namespace, key, old)
            entries[key] = entry
            self._bytes[namespace] = self._bytes.get(namespace, 0) + entry.size
            if entry.scope:
                self._by_scope.setdefault(entry.scope, set()).add((namespace, key))
            while len(entries) > max_entries:
                evicted += self._evict_oldest(namespace)
            while sum(self._bytes.values()) > self.max_bytes and any(self._namespaces.values()):
                victim = namespace if entries else max(self._bytes, key=self._bytes.get)
                evicted += self._evict_oldest(victim)
        return evicted

    def drop(self, namespace: str, key: str) -> None:
        with self._lock:
            entry = self._namespaces.get(namespace, {}).pop(key, None)
            if entry is not None:
                self._forget(namespace, key, entry)

    def drop_scope(self, scope: str, below_generation: int | None = None) -> int:
        """Drop the scope's entries (those loaded under an older generation, when one is given)."""
        dropped = 0
        with self._lock:
            for namespace, key in list(self._by_scope.get(scope, ())):
                entry = self._namespaces.get(namespace, {}).get(key)
                if entry is not None and (below_generation is None or entry.generation < below_generation):
                    del self._namespaces[namespace][key]
                    self._forget(namespace, key, entry)
                    dropped += 1
        return dropped

    def clear(self, namespace: str | None = None) -> None:
        with self._lock:
            names = [namespace] if namespace else list(self._namespaces)
            for name in names:
                for key, entry in list(self._namespaces.get(name, {}).items()):
                    self._forget(name, key, entry)
                self._namespaces.pop(name, None)
                self._bytes.pop(name, None)

    def usage(self) -> dict[str, tuple[int, int]]:
        """Entries and bytes held, per namespace."""
        return {name: (len(entries), self._bytes.get(name, 0)) for name, entries in self._namespaces.items()}

    def _evict_oldest(self, namespace: str) -> int:
        entries = self._namespaces.get(namespace)
        if not entries:
            self._bytes.pop(namespace, None)
            return 0
        key, entry = entries.popitem(last=False)
        self._forget(namespace, key, entry)
        return 1

    def _forget(self, namespace: str, key: str, entry: Entry) -> None:
        self._bytes[namespace] = self._bytes.get(namespace, 0) - entry.size
        if entry.scope:
            keys = self._by_scope.get(entry.scope)
            if keys is not None:
                keys.discard((namespace, key))
                if not keys:
                    del self._by_scope[entry.scope]


class CircuitBreaker:
    """Stops calling a failing dependency for `open_seconds` at a time, then lets one call probe it."""

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self, open_seconds: float = 3.0):
        self.open_seconds = open_seconds
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()
        self.trips = 0

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return self.CLOSED
        if time.monotonic() - self._opened_at >= self.open_seconds:
            return self.HALF_OPEN
        return self.OPEN

    def allow(self) -> bool:
        if self._opened_at is None:
            return True
        with self._lock:
            if self.state == self.HALF_OPEN and not self._probing:
                self._probing = True
                return True
        return False

    def success(self) -> None:
        if self._opened_at is not None:
            with self._lock:
                self._opened_at, self._probing = None, False

    def failure(self) -> None:
        with self._lock:
            if self._opened_at is None:
                self.trips += 1
            self._opened_at, self._probing = time.monotonic(), False
