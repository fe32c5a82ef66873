"""Cache policies (edited in admin), the L3 tier's table, scope generations and per-process counters."""

from __future__ import annotations

import time

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, router, transaction
from django.db.models import F
from django.db.models.functions import Greatest

from apps.caching.defaults import PHI_NAMESPACES

# Entries never outlive this, so a scope generation is only ever compared with entries younger than it.
MAX_TTL_SECONDS = 24 * 3600
# A scope's generation, in Redis (stack.GENERATION_KEY_MS) and in the database (its row), is kept this long after
# its last write: twice what any entry lives, so every entry stored before that write is gone by then.
SCOPE_GENERATION_IDLE_SECONDS = 2 * MAX_TTL_SECONDS


def scope_generation_start() -> int:
    """A new scope row's generation: the time in microseconds, never one an earlier row of the scope (pruned
    since) reached, so the entries stored under that one cannot become valid again."""
    return time.time_ns() // 1000


# The database's clock in microseconds, for PostgreSQL, where processes on several hosts bump the same rows.
DATABASE_MICROSECONDS_SQL = "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000000)::bigint"


class DatabaseMicroseconds(models.Func):
    """The time in microseconds by the database's clock (SQLite's processes share this host's)."""

    output_field = models.BigIntegerField()

    def as_sql(self, compiler, connection, **extra):
        return DATABASE_MICROSECONDS_SQL, []

    def as_sqlite(self, compiler, connection, **extra):
        return "%s", [scope_generation_start()]


def next_generation(field: str = "generation") -> Greatest:
    """A generation bump: at least the time in microseconds, not one more. A restore puts a generation back, and
    one more would reach the number it took back again, under which entries of the database of before (stored by
    a process that had not seen the restore yet) were valid again in every process."""
    return Greatest(F(field) + 1, DatabaseMicroseconds(), output_field=models.BigIntegerField())


class CachePolicy(models.Model):
    """How one namespace is cached. An edit reaches every process within about a second."""

    namespace = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True, help_text="Off: every read goes to the source.")
    l1_enabled = models.BooleanField("L1 (process memory)", default=True)
    l2_enabled = models.BooleanField("L2 (Redis)", default=True)
    l3_enabled = models.BooleanField("L3 (database)", default=True)
    ttl_seconds = models.PositiveIntegerField(
        "TTL (s)", default=600, validators=[MinValueValidator(1), MaxValueValidator(MAX_TTL_SECONDS)]
    )
    stale_while_revalidate_seconds = models.PositiveIntegerField(
        "stale-while-revalidate (s)",
        default=60,
        validators=[MaxValueValidator(MAX_TTL_SECONDS)],
        help_text="After the TTL, one caller reloads while the others are served the old value this long.",
    )
    max_ttl_seconds = models.PositiveIntegerField(
        "longest TTL the optimizer may set (s)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TTL_SECONDS)],
        help_text="The clinical freshness limit of this data. Empty: the optimizer never raises the TTL.",
    )
    l1_max_entries = models.PositiveIntegerField(
        "L1 entry bound", default=10_000, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)]
    )
    encrypt = models.BooleanField(
        "encrypt at rest", default=True, help_text="Encrypt L2 and L3 values (AES-256-GCM). Required for PHI."
    )
    contains_phi = models.BooleanField("holds PHI", default=True)
    # Part of every key: bumping it ("clear namespace") orphans every entry at once, in every tier.
    generation = models.PositiveBigIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["namespace"]
        verbose_name_plural = "cache policies"

    def __str__(self) -> str:
        return self.namespace

    def save(self, *args, **kwargs) -> None:
        """An edit that entries already stored would not honour (a shorter TTL or stale window, encryption
        turned on) moves the key generation on: those entries are orphaned in every tier at once.

        The generation is never written from this instance: it may have been loaded before a clear (the admin's
        form) that bumped it since, and writing it back made every entry the clear orphaned valid again. An
        edit of a stored row locks it, moves the generation on from the row's own value when it orphans, and
        writes every other field.

        A new policy's generation is the time in microseconds, not 1: a namespace whose policy was deleted (and
        created again by the code's next read) would otherwise reuse the keys of the entries a clear orphaned."""
        if self._state.adding and self.generation == 1:
            self.generation = time.time_ns() // 1000
        if self._state.adding or self.pk is None or kwargs.get("force_insert"):
            super().save(*args, **kwargs)
            return
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            rows = type(self)._base_manager.using(using).filter(pk=self.pk)
            before = (
                rows.select_for_update()
                .annotate(now_us=DatabaseMicroseconds())
                .values(*_ORPHANING_FIELDS, "generation", "now_us")
                .first()
            )
            if before is None:  # deleted since it was loaded: saved as it is, as Django would
                super().save(*args, **kwargs)
                return
            generation = before["generation"]
            if _orphans_entries(before, self):
                generation = max(generation + 1, before["now_us"])  # next_generation(), the row locked
                rows.update(generation=generation)
            self.generation = generation
            fields = kwargs.get("update_fields")
            if fields is None:
                fields = [f.name for f in self._meta.concrete_fields if not f.primary_key]
            kwargs["update_fields"] = [name for name in fields if name != "generation"]
            super().save(*args, **kwargs)

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.namespace in PHI_NAMESPACES and not self.contains_phi:
            raise ValidationError({"contains_phi": "The code stores patient data in this namespace: it holds PHI."})
        if self.contains_phi and not self.encrypt and (self.l2_enabled or self.l3_enabled):
            raise ValidationError({"encrypt": "A namespace that holds PHI must be encrypted outside process memory."})
        if self.ttl_seconds + self.stale_while_revalidate_seconds > MAX_TTL_SECONDS:
            raise ValidationError({"stale_while_revalidate_seconds": "TTL plus the stale window must fit in 24 h."})
        if self.max_ttl_seconds is not None and self.ttl_seconds > self.max_ttl_seconds:
            raise ValidationError(
                {"ttl_seconds": f"Above this namespace's freshness limit ({self.max_ttl_seconds} s)."}
            )


_ORPHANING_FIELDS = ("ttl_seconds", "stale_while_revalidate_seconds", "encrypt")


def _orphans_entries(before: dict, policy: CachePolicy) -> bool:
    return (
        policy.ttl_seconds < before["ttl_seconds"]
        or policy.stale_while_revalidate_seconds < before["stale_while_revalidate_seconds"]
        or (policy.encrypt and not before["encrypt"])
    )


class CacheEntry(models.Model):
    """The L3 tier: what survives a Redis outage or restart. Keys are HMACs; PHI values are encrypted."""

    key = models.CharField(max_length=64, primary_key=True)
    namespace = models.CharField(max_length=64)
    scope = models.CharField(max_length=64, blank=True, help_text="HMAC of the invalidation scope, or empty.")
    generation = models.BigIntegerField(default=0)
    value = models.BinaryField()
    fresh_until = models.FloatField()
    stale_until = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["stale_until"]), models.Index(fields=["namespace"])]

    def __str__(self) -> str:
        return f"{self.namespace}:{self.key[:12]}"


class CacheScopeGeneration(models.Model):
    """How many times a scope (one patient's data, say) has changed. Bumped inside the writer's transaction.

    Entries remember the generation they were loaded under; a later generation makes them misses. The
    row with scope `POLICY_SCOPE` is bumped when a policy changes, so the same one-per-second poll that
    drops other processes' stale L1 entries also reloads the policies. A row starts at the time in
    microseconds, so rows idle for SCOPE_GENERATION_IDLE_SECONDS can be pruned (one per patient ever written).
    """

    scope = models.CharField(max_length=64, primary_key=True)
    generation = models.PositiveBigIntegerField(default=scope_generation_start)
    updated_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.scope[:12]}@{self.generation}"


class CacheStat(models.Model):
    """Counters of one namespace and tier in one process, added to every few seconds."""

    class Tier(models.TextChoices):
        L1 = "l1", "L1 memory"
        L2 = "l2", "L2 Redis"
        L3 = "l3", "L3 database"
        SOURCE = "source", "source (loader)"

    namespace = models.CharField(max_length=64)
    tier = models.CharField(max_length=8, choices=Tier.choices)
    process = models.CharField(max_length=120)
    requests = models.PositiveBigIntegerField(default=0, help_text="source tier: reads asked for.")
    hits = models.PositiveBigIntegerField(default=0)
    misses = models.PositiveBigIntegerField(default=0)
    stale_serves = models.PositiveBigIntegerField(default=0)
    loads = models.PositiveBigIntegerField(default=0)
    load_seconds = models.FloatField(default=0.0)
    evictions = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    entries = models.PositiveBigIntegerField(default=0, help_text="L1 only: entries held now.")
    bytes = models.PositiveBigIntegerField(default=0, help_text="L1: bytes held now; L2/L3: bytes written.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace", "tier", "process"], name="cachestat_unique")]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.tier}@{self.process}"
