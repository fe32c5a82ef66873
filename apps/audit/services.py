"""Writing the audit trail. Every PHI read, search and write in the product ends here."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import operator
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, OperationalError, connection, transaction
from django.utils import timezone

from apps.audit.models import AuditChainHead, AuditEvent

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64

# The fields that the chain's HMAC covers, in a fixed order.
CHAINED_FIELDS = (
    "chain_id",
    "seq",
    "recorded_at",
    "actor_type",
    "actor_id",
    "actor_name",
    "action",
    "resource_type",
    "resource_id",
    "patient_id",
    "outcome",
    "source_ip",
    "purpose_of_use",
    "request_id",
    "query_digest",
    "result_count",
    "served_from_cache",
    "prev_hash",
    "patient_ids",
    "key_id",
)
# The chained fields every record has always had: `patient_ids` and `key_id` came later and enter the HMAC only
# when set, so a record sealed before they existed (or one naming a single patient) hashes as it always did.
_CHAINED_ALWAYS = CHAINED_FIELDS[:-2]
_SOURCE_IP_AT = _CHAINED_ALWAYS.index("source_ip")
_CHAINED_VALUES = operator.itemgetter(*_CHAINED_ALWAYS)


@dataclass
class AuditEntry:
    """What a caller knows about one access; the chain fields are filled in when it is written."""

    actor_type: str
    actor_id: int | None
    actor_name: str
    action: str
    resource_type: str
    resource_id: str = ""
    patient_id: int | None = None
    patient_ids: list[int] | None = None
    outcome: str = AuditEvent.Outcome.SUCCESS
    source_ip: str | None = None
    purpose_of_use: str = "TREAT"
    request_id: str = ""
    query_digest: str = ""
    result_count: int | None = None
    served_from_cache: bool = False
    recorded_at: datetime = field(default_factory=timezone.now)


def _chain_key() -> bytes:
    return settings.AUDIT_CHAIN_KEY.encode()


def chain_key_id(key: bytes) -> str:
    """A chain key's fingerprint, kept on each record it seals: names the key without revealing it."""
    return hashlib.sha256(b"audit-chain-key-id\x1f" + key).hexdigest()[:16]


@dataclass(frozen=True)
class ChainKeys:
    """The configured chain keys by id, newest first: AUDIT_CHAIN_KEY (which seals), then its fallbacks."""

    current_id: str
    keys: dict[str, bytes]
    rank: dict[str, int]  # 0 for the current key, 1 for the newest fallback, ...


@functools.lru_cache(maxsize=8)
def _chain_keys(current: str, fallbacks: tuple[str, ...]) -> ChainKeys:
    keys = {chain_key_id(key.encode()): key.encode() for key in (current, *fallbacks)}
    return ChainKeys(current_id=chain_key_id(current.encode()), keys=keys, rank={kid: n for n, kid in enumerate(keys)})


def chain_keys() -> ChainKeys:
    """The keys records verify against: a rotation moves the old key to AUDIT_CHAIN_KEY_FALLBACKS (settings)."""
    return _chain_keys(settings.AUDIT_CHAIN_KEY, tuple(settings.AUDIT_CHAIN_KEY_FALLBACKS))


def key_rollout_grace() -> timedelta:
    """How long after a chain's first record sealed with a newer key one sealed with an older key may still follow
    it (AUDIT_KEY_ROLLOUT_GRACE_MINUTES): a rolling rotation's pods that still hold the old key append to the shared
    primary chain until they restart. Past it, an older key's record is a finding (a leaked old key splicing records
    after the rotation point). A rotation may take one step (the new key current, the old one its fallback, as
    Django documents SECRET_KEY_FALLBACKS): a pod not yet restarted cannot verify a head sealed with the new key and
    leaves it unsealed after its append; the next append of a pod that knows both keys seals it again
    (_head_sealed_behind)."""
    return timedelta(minutes=settings.AUDIT_KEY_ROLLOUT_GRACE_MINUTES)


def _canonical(value: object) -> str:
    # Strings first, by exact type: most chained fields are, and a month's archive or verify canonicalises tens of
    # millions of them (an isinstance chain was a third of chain_hash).
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@functools.lru_cache(maxsize=4096)  # a handful of addresses send nearly every request
def normalize_ip(value: str | None) -> str | None:
    """The form a record keeps: a link-local peer's zone ("fe80::1%eth0") dropped, which the inet type refuses."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.partition("%")[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:  # both databases write ::ffff:1.2.3.4
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


@functools.lru_cache(maxsize=4096)
def _canonical_ip(value: str | None) -> str:
    # The address as the HMAC covers it, whichever way a database prints it: PostgreSQL writes "::1.2.3.4" for
    # what Python writes "::102:304". Idempotent on normalize_ip's forms, so records sealed before hash the same.
    if value is None:
        return ""
    return normalize_ip(value) or f"invalid:{value}"  # an edit to a non-address is still an edit


def chain_hash(values: dict, key: bytes | None = None) -> str:
    """HMAC-SHA256 over the chained fields: without the key an edited record cannot be re-sealed. The id of the key
    is chained too, so a record cannot be made to name another key. `key`: the key to seal with, by default the one
    the record names (LookupError if it is not configured), the current key for a record that names none."""
    parts = list(map(_canonical, _CHAINED_VALUES(values)))
    parts[_SOURCE_IP_AT] = _canonical_ip(values["source_ip"])
    ids = values.get("patient_ids")
    if ids is not None and ids != []:
        parts.append("patients:" + _canonical_ids(ids))
    key_id = values.get("key_id")
    if key_id is not None:
        parts.append("key:" + _canonical(key_id))
    if key is None:
        keys = chain_keys()
        key = keys.keys[keys.current_id if key_id is None else key_id]
    message = "\x1f".join(parts).encode()
    return hmac.digest(key, message, "sha256").hex()


def record_sealed_by(values: dict, keys: ChainKeys, hint: str | None = None) -> tuple[str | None, bool]:
    """Which key seals a record and whether its HMAC holds with it: (the key id it names, holds), False too when
    that key is not configured; for a record sealed before records named their key, (the first configured key
    whose HMAC holds, True), or (None, False). `hint`: the key tried first on such a record (the last one's)."""
    key_id = values.get("key_id")
    if key_id is not None:
        key = keys.keys.get(key_id)
        return key_id, key is not None and chain_hash(values, key) == values["hash"]
    candidates = keys.keys if hint is None else (hint, *keys.keys)
    for candidate in candidates:
        if chain_hash(values, keys.keys[candidate]) == values["hash"]:
            return candidate, True
    return None, False


def _canonical_ids(ids: object) -> str:
    if isinstance(ids, list) and all(type(pk) is int for pk in ids):
        return ",".join(map(str, ids))
    # Never written so (ids are ints): an edit to strings ("7" would filter as no patient), a number or an object
    # hashes apart from every list, so `audit verify` reports it instead of passing or crashing on it.
    return "json:" + json.dumps(ids, sort_keys=True, default=str)


def head_seal(name: str, seq: int, last_hash: str, key: bytes | None = None) -> str:
    """Seals a chain head, so moving it back over deleted records needs the key (`key`: the current one)."""
    message = f"head\x1f{name}\x1f{seq}\x1f{last_hash}".encode()
    return hmac.new(key or _chain_key(), message, hashlib.sha256).hexdigest()


def head_sealed_by(head: AuditChainHead, keys: ChainKeys | None = None) -> str | None:
    """The id of the configured key whose seal a chain head holds (a head idle since a rotation holds the old
    key's), None when none does: it was moved without a key."""
    keys = keys or chain_keys()
    # Never a key older than the one that sealed the record the head points at: the appender seals both with its
    # current key, and an old key (leaked) would otherwise seal a head moved back over the new key's records.
    for key_id, key in keys.keys.items():
        if hmac.compare_digest(head.seal or "", head_seal(head.name, head.seq, head.last_hash, key)):
            if keys.rank[key_id] == 0 or not head.seq:  # the current key: the common case costs no query
                return key_id
            last = AuditEvent.objects.filter(chain_id=head.pk, seq=head.seq).values_list("key_id", flat=True).first()
            return key_id if keys.rank[key_id] <= keys.rank.get(last, len(keys.rank)) else None
    return None


def head_verifies(head: AuditChainHead) -> bool:
    """Whether a chain head is where an append with a key left it: its seal matches its (name, seq, last_hash)."""
    return head_sealed_by(head) is not None


def disclosed_patients(ids) -> list[int] | None:
    """The ids a response disclosed, as a record keeps them: distinct, ascending; None for none."""
    return sorted({int(pk) for pk in ids}) or None


def query_digest(parameters: dict[str, object]) -> str:
    """A keyed digest of search parameters: lets an auditor match searches without storing an MRN."""
    message = "&".join(f"{key}={parameters[key]}" for key in sorted(parameters)).encode()
    return hmac.new(_chain_key(), b"query:" + message, hashlib.sha256).hexdigest()


PRIMARY_CHAIN = "primary"
# AuditEvent's columns in model order: instances are built positionally (the ORM's fast path).
_EVENT_ATTNAMES = tuple(field.attname for field in AuditEvent._meta.concrete_fields)


class UnsealableEntry(ValueError):
    """An entry whose fields cannot be sealed or sent (a patient id that is no number, a value JSON cannot carry):
    a fault of that one entry, so a batch that holds it is written again one record at a time."""


def _seal(entries: list[AuditEntry], *, chain_id: int, seq: int, prev_hash: str) -> list[AuditEvent]:
    """Number the entries after `seq` and chain each one's HMAC to the one before."""
    events = []
    keys = chain_keys()
    key = keys.keys[keys.current_id]
    for entry in entries:
        seq += 1
        try:
            values = entry.__dict__.copy()
            values.update(
                id=None,
                recorded_at=entry.recorded_at.astimezone(UTC),
                patient_ids=disclosed_patients(entry.patient_ids) if entry.patient_ids else None,
                source_ip=normalize_ip(entry.source_ip),
                chain_id=chain_id,
                seq=seq,
                prev_hash=prev_hash,
                key_id=keys.current_id,
            )
            values["hash"] = prev_hash = chain_hash(values, key)
        except (TypeError, ValueError, AttributeError) as exc:
            raise UnsealableEntry(f"audit record #{seq} cannot be sealed: {type(exc).__name__}") from exc
        events.append(AuditEvent(*[values[name] for name in _EVENT_ATTNAMES]))
    return events


def _locked_head(name: str) -> AuditChainHead:
    # The migration creates primary; get_or_create keeps a flushed (test) database writable too.
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(
        name=name, defaults={"seq": 0, "last_hash": GENESIS_HASH, "seal": head_seal(name, 0, GENESIS_HASH)}
    )
    return head


# The forged heads this process has logged (chain name, the seal found): every write to such a chain logged an
# ERROR, for ever, since `audit acknowledge-break` records the look but leaves the head's seal as found.
_FORGED_HEADS_LOGGED: set[tuple[str, str]] = set()


# How many records back from a head whose seal does not match it the appender looks for the state its seal holds.
# It looks holding the head's lock (every write to the chain waits), and a genuine cut's seal holds no state below
# the head: unbounded, the walk would read the whole chain, millions of records for primary. A one-step rolling
# rotation's pods that still hold the old key append far fewer records to primary before they restart; a seal
# further back leaves the head unsealed, FORGED, as a cut's is.
HEAD_RESEAL_LOOKBACK = 10_000


def _head_sealed_behind(head: AuditChainHead) -> bool:
    """Whether a head whose seal does not match it holds the seal of an earlier state of its chain, and every record
    since links to that state and verifies with a configured key: moved forward over genuine records only, by a
    process that did not know the key of its seal (a pod not yet restarted in a one-step rolling rotation), nothing
    cut. Rolling a head back to an earlier sealed state needs no key either: anchors catch both. Looked for once per
    seal and process (a seal that holds no earlier state never will), and at most HEAD_RESEAL_LOOKBACK records back."""
    keys = chain_keys()
    looked = (head.name, head.seal, tuple(keys.keys))
    if looked in _SEALS_HOLDING_NO_EARLIER_STATE:
        return False
    _SEALS_HOLDING_NO_EARLIER_STATE.add(looked)  # discarded again below when it does hold one
    expected_seq, expected_hash = head.seq, head.last_hash
    rows = (
        AuditEvent.objects.filter(chain_id=head.pk, seq__gt=head.seq - HEAD_RESEAL_LOOKBACK, seq__lte=head.seq)
        .order_by("-seq")
        .values(*CHAINED_FIELDS, "seq", "hash")
        .iterator(chunk_size=1000)
    )
    newest = len(keys.rank)  # the rank of the newest key that sealed a record walked over
    for row in rows:
        key_id, sealed = record_sealed_by(row, keys)
        if (row["seq"], row["hash"]) != (expected_seq, expected_hash) or not sealed:
            return False
        newest = min(newest, keys.rank[key_id])
        expected_seq, expected_hash = row["seq"] - 1, row["prev_hash"]
        for key in list(keys.keys.values())[: newest + 1]:  # its seal's key no older than theirs
            if hmac.compare_digest(head.seal or "", head_seal(head.name, expected_seq, expected_hash, key)):
                _SEALS_HOLDING_NO_EARLIER_STATE.discard(looked)
                return True
    return False


_SEALS_HOLDING_NO_EARLIER_STATE: set[tuple[str, str, tuple[str, ...]]] = set()  # (chain, seal, key ids) looked at


@transaction.atomic
def audit_record_batch(entries: list[AuditEntry], *, chain: str = PRIMARY_CHAIN) -> list[AuditEvent]:
    """Append entries to a chain in one transaction: one lock on its head, one INSERT, one commit."""
    if not entries:
        return []
    head = _locked_head(chain)
    events = _seal(entries, chain_id=head.pk, seq=head.seq, prev_hash=head.last_hash)
    AuditEvent.objects.bulk_create(events)
    if head_verifies(head) or _head_sealed_behind(head):
        seal = head_seal(head.name, events[-1].seq, events[-1].hash)
    else:
        # Moved without the key (records cut from its end?): sealing it now would make the cut invisible to
        # `audit verify` (the next records would take the cut ones' places). The chain goes on, its head's seal
        # left as found, which matches no state of it: verify reports the head FORGED until someone with the key
        # has looked into it. (A pod that does not know the key a rotation made current lands here too; the next
        # append of one that knows both seals the head again, _head_sealed_behind.)
        if (head.name, head.seal) not in _FORGED_HEADS_LOGGED:  # once per process and forged seal, not per write
            _FORGED_HEADS_LOGGED.add((head.name, head.seal))
            logger.error(
                "audit chain %s: its head (#%s) does not match its seal: moved without the key (records cut from "
                "its end?), or sealed with a key this process does not know (a key rotation rolling out?); appended "
                "to, but not sealed again",
                head.name, head.seq,
            )  # fmt: skip
        seal = head.seal
    AuditChainHead.objects.filter(pk=head.pk).update(
        seq=events[-1].seq, last_hash=events[-1].hash, seal=seal, updated_at=timezone.now()
    )
    return events


@dataclass
class ChainState:
    """Where a process's own chain ends, kept in memory by the only process that appends to it."""

    chain_id: int
    name: str
    seq: int
    last_hash: str


class ChainMoved(Exception):
    """The chain's head is not where this process left it (a flushed database, a second writer)."""


@transaction.atomic
def audit_chain_open(*, name: str) -> ChainState:
    """Open (or resume) a chain for one process, registering it in the primary chain when new."""
    head = _locked_head(name)
    if head.seq == 0 and name != PRIMARY_CHAIN:
        registration = AuditEntry(
            actor_type=AuditEvent.ActorType.SYSTEM, actor_id=None, actor_name="audit-writer", action="create",
            resource_type="AuditChain", resource_id=str(head.pk),
        )  # fmt: skip
        audit_record_batch([registration])
    return ChainState(chain_id=head.pk, name=head.name, seq=head.seq, last_hash=head.last_hash)


def audit_chain_resume(stale: ChainState) -> ChainState:
    """Re-read a process's chain whose head is not where the process left it, and say how it moved.

    Forward: a batch whose commit was never acknowledged (the connection broke). Back, over records this process
    wrote: records cut from the chain's end and its head restored from an earlier state, whose seal is genuine,
    so `audit verify` cannot see it. This process is the one witness: it logs the cut (a line the log shipper
    keeps off this database) and records it in the primary chain. A head whose seal does not match it (moved
    without the key) is never resumed: see _chain_broken.
    """
    head = AuditChainHead.objects.filter(name=stale.name).first()
    if head is not None and not head_verifies(head):
        return _chain_broken(stale, head)
    state = audit_chain_open(name=stale.name)
    if state.seq > stale.seq:
        logger.warning(
            "audit chain %s is at #%s, past #%s where this process left it", state.name, state.seq, stale.seq
        )
    elif state.seq == 0:  # the head row itself was gone: a flushed database (tests) or a wiped trail
        logger.error("audit chain %s was at #%s (%s) and its head is gone: started again", stale.name, stale.seq,
                     stale.last_hash)  # fmt: skip
    elif (state.seq, state.last_hash) != (stale.seq, stale.last_hash):
        logger.error(
            "audit chain %s moved back from #%s (%s) to #%s outside this process: records after #%s were cut",
            stale.name, stale.seq, stale.last_hash, state.seq, state.seq,
        )  # fmt: skip
        cut = AuditEntry(
            actor_type=AuditEvent.ActorType.SYSTEM, actor_id=None, actor_name="audit-writer", action="delete",
            resource_type="AuditChain", resource_id=str(state.chain_id), outcome=AuditEvent.Outcome.ERROR,
            result_count=max(stale.seq - state.seq, 1),
        )  # fmt: skip
        audit_record_batch([cut])
    return state


# A chain break the writer witnessed (records cut from its chain's end, its head moved without the key) is a record
# of the primary chain: `audit verify` reports each one until an acknowledgement (audit_chain_break_acknowledge), a
# sealed record of its own in primary, names it.
CHAIN_BREAK = {"actor_name": "audit-writer", "action": "delete", "resource_type": "AuditChain", "outcome": "error"}
CHAIN_BREAK_ACKNOWLEDGED = "AuditChainBreak"
# A record sealed with an older key past the rollout grace (verify's OLD KEY), acknowledged the same way: a pod the
# rollout left on the old key, looked into, not a leaked key.
OLD_KEY_RECORD_ACKNOWLEDGED = "AuditOldKeyRecord"


@transaction.atomic
def audit_chain_break_acknowledge(*, record_id: int, by: str) -> AuditEvent:
    """Acknowledge a chain break the writer recorded (the primary record `record_id`), or a record sealed with an
    older key than the current one (`audit verify`'s OLD KEY), once someone has looked into it: verify stops
    reporting it. The acknowledgement is a record of the primary chain, sealed with the current key, naming the
    record and who acknowledged it. ValueError: no such record, or acknowledged already."""
    primary = AuditChainHead.objects.filter(name=PRIMARY_CHAIN).first()
    if primary is None:
        raise ValueError("the primary chain is gone")
    if AuditEvent.objects.filter(pk=record_id, chain_id=primary.pk, **CHAIN_BREAK).exists():
        kind, what = CHAIN_BREAK_ACKNOWLEDGED, f"the chain break of record {record_id}"
    elif AuditEvent.objects.filter(pk=record_id).exclude(key_id=chain_keys().current_id).exists():
        kind, what = OLD_KEY_RECORD_ACKNOWLEDGED, f"record {record_id}, sealed with an older key,"
    else:
        raise ValueError(
            f"record {record_id} is no chain break the audit writer recorded in the primary chain, nor a record "
            "sealed with an older key than AUDIT_CHAIN_KEY"
        )
    if AuditEvent.objects.filter(chain_id=primary.pk, resource_type=kind, resource_id=str(record_id)).exists():
        raise ValueError(f"{what} is acknowledged already")
    entry = AuditEntry(
        actor_type=AuditEvent.ActorType.SYSTEM, actor_id=None, actor_name=by[:150], action="update",
        resource_type=kind, resource_id=str(record_id),
    )  # fmt: skip
    return audit_record_batch([entry])[0]


def _chain_broken(stale: ChainState, head: AuditChainHead) -> ChainState:
    """A process's chain whose head does not match its seal: moved without the key, over cut records or
    forward. Appending to it would seal it again (the append sets a fresh seal), and `audit verify` would no
    longer see the cut: the next records take the cut ones' places. So the head is left as found (verify
    reports it FORGED for good), the break is recorded in the primary chain and logged, and this process goes
    on in a new chain of its own."""
    logger.error(
        "audit chain %s was at #%s (%s) and its head, now at #%s, does not match its seal: moved without the key "
        "(records cut from its end?). Left as found; this process goes on in a new chain",
        stale.name, stale.seq, stale.last_hash, head.seq,
    )  # fmt: skip
    broken = AuditEntry(
        actor_type=AuditEvent.ActorType.SYSTEM, actor_id=None, actor_name="audit-writer", action="delete",
        resource_type="AuditChain", resource_id=str(head.pk), outcome=AuditEvent.Outcome.ERROR,
        result_count=stale.seq - head.seq if stale.seq > head.seq else None,
    )  # fmt: skip
    audit_record_batch([broken])
    prefix = stale.name.rsplit(":", 1)[0] if ":" in stale.name else stale.name
    return audit_chain_open(name=f"{prefix[:100]}:{uuid.uuid4().hex[:8]}")


# The columns a record's row sets (its id comes from the sequence).
_EVENT_COLUMNS = (
    "chain_id", "seq", "recorded_at", "actor_type", "actor_id", "actor_name", "action", "resource_type",
    "resource_id", "patient_id", "outcome", "source_ip", "purpose_of_use", "request_id", "query_digest",
    "result_count", "served_from_cache", "prev_hash", "hash", "patient_ids", "key_id",
)  # fmt: skip
# One constant statement for any batch size, so psycopg prepares it once. The records travel as one
# JSON parameter that PostgreSQL expands into typed rows: a parameter per field cost ~7 us each to send.
_APPEND_OWNED_SQL = (  # only the fixed column names above are interpolated
    "WITH moved AS (UPDATE audit_auditchainhead SET seq = %s, last_hash = %s, seal = %s, updated_at = now() "  # noqa: S608
    "WHERE id = %s AND seq = %s AND last_hash = %s RETURNING 1) "
    f"INSERT INTO audit_auditevent ({', '.join(_EVENT_COLUMNS)}) "
    f"SELECT {', '.join(_EVENT_COLUMNS)} FROM json_populate_recordset(NULL::audit_auditevent, %s::json) "
    "WHERE EXISTS (SELECT 1 FROM moved) RETURNING id"
)


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()  # aware and in UTC: PostgreSQL reads back the same microsecond
    raise TypeError(f"{type(value).__name__} in an audit record")


def audit_append_owned(
    *, state: ChainState, entries: list[AuditEntry], database: psycopg.Connection | None = None
) -> list[AuditEvent]:
    """Append to a process's own chain in ONE statement (PostgreSQL, autocommit).

    The head moves only if it is where this process left it, and the records are inserted only if
    the head moved: a single round trip and a single commit per batch, with nothing to lock against
    other processes. Raises ChainMoved when the head was elsewhere (nothing is written then).
    `database`: an autocommit psycopg connection to use instead of Django's (the group-commit writer's own).
    """
    events = _seal(entries, chain_id=state.chain_id, seq=state.seq, prev_hash=state.last_hash)
    seal = head_seal(state.name, events[-1].seq, events[-1].hash)
    # A key left out is NULL: most records disclose no list, and need not carry one.
    try:
        rows = json.dumps(
            [
                {name: value for name in _EVENT_COLUMNS if (value := getattr(event, name)) is not None}
                for event in events
            ],
            default=_json_value,
        )
    except (TypeError, ValueError) as exc:  # a value JSON cannot carry (nothing is written)
        raise UnsealableEntry(f"an audit record cannot be sent: {type(exc).__name__}") from exc
    with (database or connection).cursor() as cursor:
        cursor.execute(
            _APPEND_OWNED_SQL, [events[-1].seq, events[-1].hash, seal, state.chain_id, state.seq, state.last_hash, rows]
        )
        ids = [row[0] for row in cursor.fetchall()]
    if len(ids) != len(events):
        raise ChainMoved(f"chain {state.name} is not at #{state.seq}")
    for event, pk in zip(events, ids, strict=True):
        event.pk = event.id = pk
    state.seq, state.last_hash = events[-1].seq, events[-1].hash
    return events


def audit_record(entry: AuditEntry) -> AuditEvent:
    """Append one entry to the audit trail; it is committed when this returns.

    Outside a transaction the entry goes through the process's group-commit writer, which shares
    one commit among concurrent requests. Inside a transaction (a clinical write, a test) it is
    written in that transaction, so the record and the change commit or roll back together.
    """
    if settings.AUDIT_GROUP_COMMIT and not connection.in_atomic_block:
        from apps.audit.writer import writer

        return writer.submit(entry)
    return audit_record_batch([entry])[0]


def audit_anchors_read(path: Path) -> dict[str, tuple[int, str]]:
    """The anchors an earlier `audit verify --anchor` saved: each chain's (seq, hash); none if the file is new."""
    if not path.exists():
        return {}
    try:
        saved = json.loads(path.read_text())
        anchors = {str(name): (int(seq), str(digest)) for name, (seq, digest) in saved["chains"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path} is not an anchor file `audit verify --anchor` wrote: {exc}") from exc
    return anchors


def audit_anchors_write(path: Path, heads: dict[str, tuple[int, str]]) -> None:
    """Save each chain's end as the next anchors; written whole and then renamed, so a crash leaves the old file."""
    partial = path.with_name(f".{path.name}.partial")
    body = {"written_at": timezone.now().isoformat(), "chains": {name: list(end) for name, end in heads.items()}}
    partial.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    partial.replace(path)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


# Three years ahead is plenty for a monthly schedule; beyond it a typo would create thousands of tables.
PARTITION_MONTHS_AHEAD_MAX = 36
# How long creating a partition may wait for its lock on the trail. CREATE TABLE ... PARTITION OF needs an
# ACCESS EXCLUSIVE lock on the parent, and while it waits behind a long reader (`audit verify`, pg_dump) every
# audit INSERT queues behind it, so every PHI read would hang. Giving up costs little: the partitions are made
# months ahead, and the task tries again (below).
PARTITION_LOCK_TIMEOUT = "2s"
# The daily task tries again after a lock timeout (a Celery retry: no worker slot is held while it waits), waiting
# PARTITION_BACKOFF_SECONDS, then twice as long each time up to PARTITION_BACKOFF_MAX_SECONDS: 1 + 2 + 4 + 8 + 16 +
# 20 + 20 min, about 71 minutes in all, so a nightly `audit verify` or pg_dump that overlaps it does not make it
# give up every day. One wait stays under RabbitMQ's 30-minute consumer_timeout (a worker holds a retry's delivery
# unacknowledged until it is due). A run that still fails is recorded (PARTITION_FAILURE_CACHE_KEY) and logged as
# an error.
PARTITION_ATTEMPTS = 8
PARTITION_BACKOFF_SECONDS = 60.0
PARTITION_BACKOFF_MAX_SECONDS = 20 * 60.0
# The last run of the partition task that gave up, until one succeeds: `audit verify` (and whatever reports
# health) reads it through selectors.audit_partitions_problem().
PARTITION_FAILURE_CACHE_KEY = "audit:partitions-failure"
PARTITION_FAILURE_KEPT_SECONDS = 45 * 24 * 3600
# The BEFORE TRUNCATE trigger every table of the trail carries (migration 0003): a statement-level trigger
# is not cloned onto new partitions the way row-level ones are, so each partition gets its own.
TRUNCATE_GUARD = "audit_refuse_truncate"


def audit_truncate_guard_add(cursor, table: str) -> None:
    """Refuse TRUNCATE on `table` (PostgreSQL). Only `manage.py flush` (which empties every table) passes."""
    cursor.execute("SELECT to_regprocedure(%s)", [f"{TRUNCATE_GUARD}()"])
    if cursor.fetchone()[0] is None:  # migration 0002, before 0003 made it: 0003 guards every table there is
        return
    cursor.execute(
        f'CREATE TRIGGER {TRUNCATE_GUARD} BEFORE TRUNCATE ON "{table}" '
        f"FOR EACH STATEMENT EXECUTE FUNCTION {TRUNCATE_GUARD}()"
    )


def _utc_bound(day: date) -> str:
    # Explicitly UTC: a bare date is read in the session's time zone, which would shift the month's edges.
    return f"{day.isoformat()} 00:00:00+00"


def _default_partition_has_rows(cursor, table: str, start: date, end: date) -> bool:
    cursor.execute("SELECT to_regclass(%s)", [f"{table}_default"])
    if cursor.fetchone()[0] is None:  # gone (`audit verify` reports it): inserts need the partitions more
        return False
    cursor.execute(
        f'SELECT 1 FROM "{table}_default" WHERE recorded_at >= %s AND recorded_at < %s LIMIT 1',  # noqa: S608
        [_utc_bound(start), _utc_bound(end)],
    )
    return cursor.fetchone() is not None


@transaction.atomic
def audit_partitions_ensure(
    *, months_ahead: int = 3, today: date | None = None, lock_timeout: str = PARTITION_LOCK_TIMEOUT
) -> list[str]:
    """Create the monthly partitions from this month (UTC) to `months_ahead` ahead, each with its TRUNCATE
    guard (PostgreSQL only). Idempotent, and concurrent runs take turns.

    A partition whose lock is not granted within `lock_timeout` raises OperationalError (nothing is created by
    that run) rather than stall every audit write queued behind it (audit_partitions_ensure_attempt retries).

    Rows outside every partition land in the default partition, so a missed run never loses a record; a
    month that already has rows there is skipped (PostgreSQL cannot create it over them, and they may not
    be moved: the trail refuses DELETE), so the months after it are still created.
    """
    if not 0 <= months_ahead <= PARTITION_MONTHS_AHEAD_MAX:
        raise ValueError(f"months_ahead must be between 0 and {PARTITION_MONTHS_AHEAD_MAX}, not {months_ahead}.")
    if connection.vendor != "postgresql":
        return []
    table = AuditEvent._meta.db_table
    start = _month_start(today or timezone.now().astimezone(UTC).date())
    created = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{table}:partitions"])
        cursor.execute("SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)", [lock_timeout])
        caller_lock_timeout = cursor.fetchone()[0]
        for _ in range(months_ahead + 1):
            end = _next_month(start)
            name = f"{table}_y{start.year}m{start.month:02d}"
            cursor.execute("SELECT to_regclass(%s)", [name])
            if cursor.fetchone()[0] is None:
                if _default_partition_has_rows(cursor, table, start, end):
                    logger.warning("audit partition %s not created: its month has rows in the default partition", name)
                else:
                    cursor.execute(
                        f'CREATE TABLE "{name}" PARTITION OF "{table}" '
                        f"FOR VALUES FROM ('{_utc_bound(start)}') TO ('{_utc_bound(end)}')"
                    )
                    audit_truncate_guard_add(cursor, name)
                    created.append(name)
            start = end
        # Restored for the rest of a caller's transaction (a migration); on an error the savepoint's rollback does it.
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [caller_lock_timeout])
    return created


def lock_not_granted(exc: BaseException) -> bool:
    """Whether `exc` is a statement giving up on its lock_timeout (LockNotAvailable)."""
    import psycopg

    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, psycopg.errors.LockNotAvailable)


class PartitionsLockBusy(Exception):
    """The trail's lock was not granted in time, and attempts are left: try again in `retry_in` seconds."""

    def __init__(self, retry_in: float, attempt: int):
        super().__init__(f"lock on the trail not granted (attempt {attempt}); try again in {retry_in:g}s")
        self.retry_in = retry_in


def audit_partitions_ensure_attempt(
    *,
    months_ahead: int = 3,
    attempt: int = 1,
    attempts: int | None = None,
    today: date | None = None,
    lock_timeout: str | None = None,
) -> list[str]:
    """One attempt of the daily partition task (audit_partitions_ensure). A lock timeout behind a long reader of
    the trail (a nightly `audit verify`, pg_dump) raises PartitionsLockBusy with the wait before the next attempt
    while attempts are left, so an overlap every night does not stop the partitions for good. The last attempt's
    failure is logged as an error and recorded for audit_partitions_problem (cleared by a later success), then
    raised: months without a partition fill the default partition, and such a month can never get one of its own.
    Any other failure (a ValueError for a schedule's months_ahead out of bounds) is recorded and raised at once.
    `attempts`, `lock_timeout`: PARTITION_ATTEMPTS and PARTITION_LOCK_TIMEOUT unless given."""
    attempts = attempts or PARTITION_ATTEMPTS
    lock_timeout = lock_timeout or PARTITION_LOCK_TIMEOUT
    try:
        created = audit_partitions_ensure(months_ahead=months_ahead, today=today, lock_timeout=lock_timeout)
    except DatabaseError as exc:
        if attempt < attempts and lock_not_granted(exc):
            retry_in = min(PARTITION_BACKOFF_SECONDS * 2 ** (attempt - 1), PARTITION_BACKOFF_MAX_SECONDS)
            logger.warning(
                "audit partitions: lock on the trail not granted within %s (attempt %d of %d), trying again in %gs",
                lock_timeout, attempt, attempts, retry_in,
            )  # fmt: skip
            raise PartitionsLockBusy(retry_in, attempt) from exc
        _partitions_failure_record(exc, attempts=attempt)
        raise
    except Exception as exc:  # months_ahead out of bounds, a bug: as much a failed run (no retry helps)
        _partitions_failure_record(exc, attempts=attempt)
        raise
    _partitions_failure_clear()
    return created


def _partitions_failure_record(exc: BaseException, *, attempts: int) -> None:
    if lock_not_granted(exc):
        reason = "its lock on the trail was not granted in time (a long reader of it: audit verify, pg_dump?)"
    else:
        reason = f"{type(exc).__name__}: {exc}"[:300]
    failure = {"at": timezone.now().isoformat(), "attempts": attempts, "reason": reason}
    logger.error(
        "audit partitions: the monthly partitions were not created after %d attempt(s): %s. Records past the last "
        "partition go to the default partition, and such a month can never have a partition of its own.",
        attempts, reason,
    )  # fmt: skip
    try:
        cache.set(PARTITION_FAILURE_CACHE_KEY, failure, timeout=PARTITION_FAILURE_KEPT_SECONDS)
    except Exception:  # the error log above still says it; the task's own error is what is raised
        logger.warning("audit partitions: the failure could not be recorded in the cache", exc_info=True)


def _partitions_failure_clear() -> None:
    try:
        cache.delete(PARTITION_FAILURE_CACHE_KEY)
    except Exception:  # the partitions exist; a stale failure note is the lesser harm
        logger.warning("audit partitions: the last failure could not be cleared from the cache", exc_info=True)
