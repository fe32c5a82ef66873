"""The pieces the cache stack is built from: value codec, L1 memory tier, Redis circuit breaker, keys.

Kept free of Django models so each piece can be tested and benchmarked on its own.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PLAIN, SEALED = b"P", b"G"
_KEY_ID_BYTES, _NONCE_BYTES = 4, 12
_json_scan = json.JSONDecoder().raw_decode  # values are compact UTF-8 JSON: no encoding sniffing, no whitespace


class CodecError(Exception):
    """A stored value that cannot be read back (a rotated-out key, a corrupt or foreign value)."""


class ValueCodec:
    """JSON values, sealed with AES-256-GCM when the namespace asks for it. The first key seals; all open.

    JSON rather than pickle: a value read back from Redis or the database can never run code. A sealed
    value is `G | key id | nonce | ciphertext+tag`: the key id picks the opening key at once (no trial
    decryption after a rotation), and `context` (the cache key) is authenticated with it, so a sealed
    value copied under another key, one patient's card under another patient's key, does not open.
    One AEAD call each way: a cache hit pays a few microseconds for it, not Fernet's tens.
    """

    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError("at least one encryption key is needed")
        ciphers = [self._cipher(key) for key in keys]
        self._sealing_id, self._sealing = ciphers[0]
        self._opening = dict(ciphers)

    @staticmethod
    def _cipher(key: str) -> tuple[bytes, AESGCM]:
        """A configured key (32 random bytes, urlsafe base64) -> (its public id, the AES-GCM key derived from it)."""
        try:
            material = base64.urlsafe_b64decode(key)
        except ValueError as exc:
            raise ValueError("cache encryption keys are 32 random bytes in urlsafe base64") from exc
        if len(material) != 32:
            raise ValueError("cache encryption keys are 32 random bytes in urlsafe base64")
        derived = HKDF(hashes.SHA256(), 32, salt=None, info=b"controlplane cache values AES-256-GCM").derive(material)
        key_id = hashlib.sha256(b"controlplane cache key id:" + derived).digest()[:_KEY_ID_BYTES]
        return key_id, AESGCM(derived)

    @staticmethod
    def derive_key(secret: str) -> str:
        """A key derived from a server secret, for installations that set no explicit key."""
        return base64.urlsafe_b64encode(hashlib.sha256(f"cache-encryption:{secret}".encode()).digest()).decode()

    def encode(self, value: Any, *, encrypt: bool, context: bytes = b"") -> bytes:
        try:
            raw = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cached values must be JSON data (dicts, lists, strings, numbers): {exc}") from exc
        return self._seal(raw, context) if encrypt else PLAIN + raw

    def _seal(self, raw: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return SEALED + self._sealing_id + nonce + self._sealing.encrypt(nonce, raw, context)

    def _open(self, blob: bytes, context: bytes) -> bytes:
        start = 1 + _KEY_ID_BYTES
        cipher = self._opening.get(blob[1:start])
        if cipher is None:
            raise CodecError("sealed with a key that is no longer configured")
        return cipher.decrypt(blob[start : start + _NONCE_BYTES], blob[start + _NONCE_BYTES :], context)

    def decode(self, blob: bytes, context: bytes = b"") -> Any:
        kind = blob[:1]
        try:
            if kind == SEALED:
                return _json_value(self._open(blob, context).decode())
            if kind == PLAIN:
                return _json_value(blob[1:].decode())
        except (InvalidTag, ValueError) as exc:
            raise CodecError(str(exc) or type(exc).__name__) from exc
        raise CodecError("unknown value format")

    def rotate(self, blob: bytes, context: bytes = b"") -> bytes:
        """Re-seal a value with the current key (values sealed with an older key still open until then)."""
        if blob[:1] != SEALED or blob[1 : 1 + _KEY_ID_BYTES] == self._sealing_id:
            return blob
        try:
            return self._seal(self._open(blob, context), context)
        except InvalidTag as exc:
            raise CodecError("the value does not open with its key") from exc


def _json_value(text: str) -> Any:
    value, end = _json_scan(text)
    if end != len(text):
        raise ValueError("extra data after the value")
    return value


class KeyHasher:
    """Cache keys and scopes are HMAC-SHA256 of their parts: no identifier ever reaches Redis or the table.

    The MACs of the last `remembered` keys made of plain parts (strings, numbers, booleans, None) are
    kept, in this process only: the same keys are read over and over, and making one is a third of a
    cache hit's own CPU. Remembered per type too, as 1, 1.0 and True are equal but make other keys.
    """

    def __init__(self, secret: str, remembered: int = 8192):
        self._secret = secret.encode()
        self._remembered = functools.lru_cache(maxsize=remembered, typed=True)(self._mac_of)

    def digest(self, *parts: Any) -> str:
        if _PLAIN_PART_TYPES.issuperset(map(type, parts)):
            return self._remembered(*parts)
        return self._mac_of(*parts)  # containers among the parts: (1, 2) == (1, True) would mix keys up

    def _mac_of(self, *parts: Any) -> str:
        message = "\x1f".join(map(_part, parts)).encode()
        return hmac.digest(self._secret, message, "sha256").hex()


_PLAIN_PART_TYPES = frozenset({str, int, float, bool, type(None)})


def _part(value: Any) -> str:
    """A part with its type (1, "1" and True make different keys), containers spelled out in a stable order.

    Text is length-prefixed, so every part's spelling ends where it says: a part that contains the
    separators (a text with "\x1fstr:" in it, one with "," in a list) cannot spell two parts, and
    one client's input can never produce the key of another's.
    """
    kind = type(value)
    if kind is str:  # the common parts first: a key is computed on every read, hits included
        return f"str:{len(value)}:{value}"
    if kind is int or kind is bool or kind is float or value is None:  # no separator in their spelling
        return f"{kind.__name__}:{value!r}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(_part, value)) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ",".join(f"{_part(k)}:{_part(v)}" for k, v in items) + "}"
    text = str(value)
    return f"{kind.__name__}:{len(text)}:{text}"


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
