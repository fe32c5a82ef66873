"""The pieces the cache stack is built from: value codec, L1 memory tier, keys.

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
import sys
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
_SEALED_OVERHEAD = len(SEALED) + _KEY_ID_BYTES + _NONCE_BYTES + 16  # the marker, key id, nonce and GCM tag
_json_scan = json.JSONDecoder().raw_decode  # values are compact UTF-8 JSON: no encoding sniffing, no whitespace


class CodecError(Exception):
    """A stored value that cannot be read back (a rotated-out key, a corrupt or foreign value)."""


class ValueCodec:
    """JSON values, sealed with AES-256-GCM when the namespace asks for it. The first key seals; all open.

    JSON rather than pickle: a value read back from Redis or the database can never run code. A sealed
    value is `G | key id | nonce | ciphertext+tag`: the key id picks the opening key at once (no trial
    decryption after a rotation), and `context` (the cache key and the record's generation and freshness,
    see stack._sealed_context) is authenticated with it, so a sealed value copied under another key (one
    patient's card under another patient's key), or given another record's header, does not open.
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
        raw = self._dumps(value)
        return self._seal(raw, context) if encrypt else PLAIN + raw

    def dumps_as_read(self, value: Any) -> tuple[bytes, Any]:
        """The JSON of a value and the value as a read will give it back (`{1: (2,)}` reads as `{"1": [2]}`):
        a value stored in tiers whose records differ is written once and sealed for each (`wrap`)."""
        raw = self._dumps(value)
        return raw, _json_value(raw.decode())

    def wrap(self, raw: bytes, *, encrypt: bool, context: bytes = b"") -> bytes:
        """The stored form of `dumps_as_read`'s JSON."""
        return self._seal(raw, context) if encrypt else PLAIN + raw

    @staticmethod
    def stored_size(raw: bytes, *, encrypt: bool) -> int:
        """What `wrap` makes of `raw`, in bytes, without sealing it."""
        return len(raw) + (_SEALED_OVERHEAD if encrypt else len(PLAIN))

    @staticmethod
    def _dumps(value: Any) -> bytes:
        try:
            return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cached values must be JSON data (dicts, lists, strings, numbers): {exc}") from exc

    def _seal(self, raw: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return SEALED + self._sealing_id + nonce + self._sealing.encrypt(nonce, raw, context)

    def _open(self, blob: bytes, context: bytes) -> bytes:
        start = 1 + _KEY_ID_BYTES
        cipher = self._opening.get(blob[1:start])
        if cipher is None:
            raise CodecError("sealed with a key that is no longer configured")
        return cipher.decrypt(blob[start : start + _NONCE_BYTES], blob[start + _NONCE_BYTES :], context)

    def decode(self, blob: bytes, context: bytes = b"", *, sealed_only: bool = False) -> Any:
        """The value of a stored blob. `sealed_only` (an encrypted namespace): a value in the clear is refused,
        since anyone who can write to Redis could otherwise plant one under a patient's key and have it served."""
        return self.decode_sized(blob, context, sealed_only=sealed_only, sized=False)[0]

    def decode_sized(
        self, blob: bytes, context: bytes = b"", *, sealed_only: bool = False, sized: bool = True
    ) -> tuple[Any, int]:
        """`decode`, with the bytes the value takes in memory once decoded (`json_memory` of its JSON; 0 unless
        `sized`): what an L1 entry made of it is counted as, found without walking the value."""
        kind = blob[:1]
        try:
            if kind == SEALED:
                raw = self._open(blob, context)
            elif kind == PLAIN:
                if sealed_only:
                    raise CodecError("a value in the clear where only sealed values are stored")
                raw = blob[1:]
            else:
                raise CodecError("unknown value format")
            return _json_value(raw.decode()), json_memory(raw) if sized else 0
        except (InvalidTag, ValueError) as exc:
            raise CodecError(str(exc) or type(exc).__name__) from exc

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

    The MACs of the last `remembered` keys made of short plain parts (strings, numbers, booleans, None)
    are kept, in this process only: the same keys are read over and over, and making one is a third of a
    cache hit's own CPU. Remembered per type too, as 1, 1.0 and True are equal but make other keys. Long
    text (a model's input, a note) is never remembered: the memo keeps its parts, so 8,192 of them would
    hold gigabytes, and clinical text in memory for no reason.
    """

    REMEMBERED_TEXT_CHARS = 256

    def __init__(self, secret: str, remembered: int = 8192):
        self._secret = secret.encode()
        self._remembered = functools.lru_cache(maxsize=remembered, typed=True)(self._mac_of)

    def digest(self, *parts: Any) -> str:
        if _PLAIN_PART_TYPES.issuperset(map(type, parts)) and (
            sum(len(part) for part in parts if type(part) is str) <= self.REMEMBERED_TEXT_CHARS
        ):
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
        items = sorted(((_part(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        return "{" + ",".join(f"{k}:{_part(v)}" for k, v in items) + "}"
    if isinstance(value, (set, frozenset)):  # iteration order: insertion history and per-process hashing
        return "<" + ",".join(sorted(map(_part, value))) + ">"
    if kind.__str__ is object.__str__ and kind.__repr__ is object.__repr__:
        # Its text is its address: another key for each equal object, and the key of a freed one's successor.
        raise TypeError(f"a {kind.__name__} cannot be part of a cache key: give it a __str__ that says what it is")
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
    size: int = 0  # its stored bytes
    memory: int = 0  # what the value takes in this process (`json_memory`), 0 if not worked out

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until

    def is_servable_stale(self, now: float) -> bool:
        return now < self.stale_until


class MemoryTier:
    """L1: an LRU with TTL over every namespace, an entry bound per namespace and a byte bound for the process.

    The byte bound counts what the values take in this process's memory, not their stored (JSON) size:
    a decoded card takes several times its JSON. Each entry is counted once, as it is put: by its `memory`,
    which the stack works out from the JSON it already has in hand (`json_memory`, a few byte counts, never
    below what the value takes), else by walking the value (`deep_size`). Never a ratio shared by a
    namespace's entries: sampled on one shape and applied to another (a long text, then small cards), it
    let a namespace of mixed values hold several times the bound. A hit computes no size.
    A value over an eighth of the bound is not kept at all: it would push out a large share of the hot
    entries (all of them, past the bound) for a read that L2 serves anyway.
    When full, the entry used longest ago goes, whatever its namespace; entries past their stale window
    go first.
    """

    ENTRY_OVERHEAD_BYTES = 400  # the Entry, its key and the bookkeeping that finds it
    LARGEST_SHARE = 8  # no entry takes more than 1/8 of the bound

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._namespaces: dict[str, OrderedDict[str, Entry]] = {}
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()  # least recently used first
        self._by_scope: dict[str, set[tuple[str, str]]] = {}
        self._bytes: dict[str, int] = {}
        self._sizes: dict[tuple[str, str], int] = {}  # what each entry is counted as
        self._total_bytes = 0
        self._lock = threading.Lock()

    def get(self, namespace: str, key: str) -> Entry | None:
        entries = self._namespaces.get(namespace)
        if entries is None:
            return None
        entry = entries.get(key)
        if entry is not None:
            with contextlib.suppress(KeyError):  # dropped by another thread in between
                entries.move_to_end(key)
                self._order.move_to_end((namespace, key))
        return entry

    def put(self, namespace: str, key: str, entry: Entry, *, max_entries: int, now: float | None = None) -> int:
        """Store an entry (its `size`: its stored bytes; its `memory`: what its value takes, 0 if not known);
        the number of entries evicted to make room.

        Readers move entries to the end of the LRU orders without the lock, so these are only ever
        popped from (one atomic call each), never iterated."""
        evicted = 0
        largest = self.max_bytes // self.LARGEST_SHARE
        # Over the share as stored, it is over it decoded too (Python objects outweigh their JSON): left to L2
        # without walking it, which every read of such a value paid before dropping it.
        if entry.size > largest:
            size = entry.size
        else:
            size = (entry.memory or deep_size(entry.value)) + self.ENTRY_OVERHEAD_BYTES
        if size > largest:
            self.drop(namespace, key)  # an older, smaller value of the key is not current either
            return 0
        with self._lock:
            entries = self._namespaces.setdefault(namespace, OrderedDict())
            old = entries.pop(key, None)
            if old is not None:
                self._forget(namespace, key, old)
            entries[key] = entry
            self._order[(namespace, key)] = None
            self._sizes[(namespace, key)] = size
            self._bytes[namespace] = self._bytes.get(namespace, 0) + size
            self._total_bytes += size
            if entry.scope:
                self._by_scope.setdefault(entry.scope, set()).add((namespace, key))
            while len(entries) > max_entries:
                oldest_key, oldest = entries.popitem(last=False)
                evicted += self._forget(namespace, oldest_key, oldest)
            now = time.time() if now is None else now
            while self._order:  # the least recently used first, while it is past its stale window
                oldest_namespace, oldest_key = self._order.popitem(last=False)[0]
                oldest = self._namespaces[oldest_namespace][oldest_key]
                if oldest.stale_until > now:
                    self._order[(oldest_namespace, oldest_key)] = None
                    self._order.move_to_end((oldest_namespace, oldest_key), last=False)
                    break
                evicted += self._evict(oldest_namespace, oldest_key)
            while self._total_bytes > self.max_bytes and len(self._order) > 1:
                evicted += self._evict(*self._order.popitem(last=False)[0])
        return evicted

    def drop(self, namespace: str, key: str) -> None:
        with self._lock:
            if key in self._namespaces.get(namespace, {}):
                self._evict(namespace, key)

    def drop_scope(self, scope: str, below_generation: int | None = None) -> int:
        """Drop the scope's entries (those loaded under an older generation, when one is given)."""
        dropped = 0
        with self._lock:
            for namespace, key in list(self._by_scope.get(scope, ())):
                entry = self._namespaces.get(namespace, {}).get(key)
                if entry is not None and (below_generation is None or entry.generation < below_generation):
                    dropped += self._evict(namespace, key)
        return dropped

    def clear(self, namespace: str | None = None) -> None:
        with self._lock:
            names = [namespace] if namespace else list(self._namespaces)
            for name in names:
                for key in list(self._namespaces.get(name, {})):
                    self._evict(name, key)
                # The namespace stays, empty: `usage` says 0, and the admin page stops showing what it held.

    def usage(self) -> dict[str, tuple[int, int]]:
        """Entries and bytes held (in memory, estimated), per namespace.

        Under the lock: read while another thread put or evicted, the counts were torn (one namespace's entries
        before a put and its bytes after it), and a namespace added meanwhile failed the whole flush."""
        with self._lock:
            return {name: (len(entries), self._bytes.get(name, 0)) for name, entries in self._namespaces.items()}

    def _evict(self, namespace: str, key: str) -> int:
        return self._forget(namespace, key, self._namespaces[namespace].pop(key))

    def _forget(self, namespace: str, key: str, entry: Entry) -> int:
        """Everything but the namespace's own dict (the caller has taken the entry out of it already)."""
        self._order.pop((namespace, key), None)
        size = self._sizes.pop((namespace, key), 0)
        self._bytes[namespace] = self._bytes.get(namespace, 0) - size
        self._total_bytes -= size
        if entry.scope:
            keys = self._by_scope.get(entry.scope)
            if keys is not None:
                keys.discard((namespace, key))
                if not keys:
                    del self._by_scope[entry.scope]
        return 1


def deep_size(value: Any) -> int:
    """Bytes a JSON-shaped value takes in this process (containers and what they hold; shared objects
    counted each time they appear, which only overstates)."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        return size + sum(deep_size(k) + deep_size(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return size + sum(deep_size(item) for item in value)
    return size


# What `json_memory` counts a decoded JSON value's parts as (CPython 3.11, 64-bit), each at least `deep_size`'s.
_DICT_BYTES, _DICT_KEY_BYTES = 184, 37  # a dict with its first key (its table grows by about 37 bytes a key)
# A list with its first item (8 bytes a pointer, over-allocated: a short one has up to 7 spare slots).
_LIST_BYTES, _LIST_ITEM_BYTES = 96, 10
_STR_BYTES, _WIDE_STR_BYTES = 49, 76  # a str object without its characters: ASCII, or wider (UCS-2/UCS-4)
_SCALAR_BYTES = 32  # an int below 2**60 (larger ones' digits are counted as text), True, None, a float unseen
_FLOAT_BYTES = 24  # a float, whatever its digits
_LONG_TEXT = 64  # JSON bytes per string from which its strings are taken for prose, whose punctuation is no structure


def json_memory(raw: bytes) -> int:
    """About what the value of compact JSON `raw` takes once decoded (`deep_size`'s measure), from a few byte
    counts (C loops over the bytes: a few microseconds for a card, where walking the decoded value costs
    several times its decoding). Never below `deep_size`: each part is counted at the most it can take (text
    at 4 bytes a character where a character beyond the BMP may be in it), so a bound kept on it holds;
    above it by a fifth to a half for cards, and by a few percent for lists of floats (embeddings). Commas,
    colons and brackets inside strings read as structure and count more than they take, unless the strings
    are long (prose) or there are none, where what is outside the strings is known: only a value of short
    strings full of punctuation is overcounted much. Where it is known, a float (its `.`) is counted as the
    24 bytes it takes, and digits as nothing unless an integer may be among the numbers (a large one takes
    4 bytes for each 9 of its digits): counted at twice the floats' real cost before, an L1 of embeddings
    held half the vectors its bound has room for.
    """
    quotes = raw.count(b'"')
    bare = raw
    outside_known = quotes == 0  # no strings: every byte is structure or a number
    if not outside_known and len(raw) > _LONG_TEXT * (quotes + 1) and b'\\"' not in raw:
        bare = b"".join(raw.split(b'"')[0::2])  # no escaped quote: every other piece is text
        outside_known = True
    commas, colons = bare.count(b","), bare.count(b":")
    dicts, lists = bare.count(b"{"), bare.count(b"[")
    strings = quotes >> 1
    string_bytes = _STR_BYTES
    items = max(0, commas + dicts + lists - colons)  # list items, counting each key-value pair once
    values = items + colons + 1
    scalars = max(0, values - (strings - colons) - dicts - lists)
    floats = 0
    if outside_known:
        text = len(raw) - len(bare) - quotes  # the strings' own bytes
        # Outside strings a `.` is only ever in a float (one each), and t, f and n only in true, false and null.
        floats = min(scalars, bare.count(b"."))
        if floats < scalars and scalars > floats + bare.count(b"t") + bare.count(b"f") + bare.count(b"n"):
            text += len(bare) >> 1  # an integer may be among them: one of d digits takes at most 32 + d / 2 bytes
    else:
        text = len(raw)
    if b"\\u" in raw:  # a character beyond ASCII makes its whole string 2 or 4 bytes a character
        text *= 4 if b"\\ud" in raw else 2  # \ud800-\udfff: a surrogate pair, beyond the BMP (or Hangul)
        string_bytes = _WIDE_STR_BYTES
    return (
        dicts * _DICT_BYTES
        + colons * _DICT_KEY_BYTES
        + lists * _LIST_BYTES
        + items * _LIST_ITEM_BYTES
        + strings * string_bytes
        + floats * _FLOAT_BYTES
        + (scalars - floats) * _SCALAR_BYTES
        + text
    )
