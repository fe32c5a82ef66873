from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q


class AuditEventQuerySet(models.QuerySet):
    """Audit events are append-only: bulk updates and deletes through the ORM are refused."""

    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only.")

    def delete(self):
        raise PermissionError("Audit events are append-only.")


class Discloses(models.Lookup):
    """`patient_ids__discloses=<id>`: the record's list of disclosed patients holds this one.

    PostgreSQL: jsonb containment, which the partial GIN index answers. SQLite (the embedded default):
    a scan of the list with json_each, which it has built in.
    """

    lookup_name = "discloses"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        # Only the column's own SQL is interpolated; the id is a parameter.
        return f"EXISTS (SELECT 1 FROM json_each({lhs}) WHERE json_each.value = %s)", [*params, int(self.rhs)]  # noqa: S608

    def as_postgresql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} @> %s::jsonb", [*params, f"[{int(self.rhs)}]"]


class PatientIdsField(models.JSONField):
    """Internal ids of the patients one response disclosed: a JSON list, jsonb on PostgreSQL."""


PatientIdsField.register_lookup(Discloses)


class AuditEvent(models.Model):
    """One access to protected health information, chained to the previous record by an HMAC.

    No foreign keys: the trail must outlive the rows it describes. Patient identifiers (MRN, name)
    never appear here; searches keep only a keyed digest of their parameters. On PostgreSQL the table
    is range-partitioned by month and a trigger refuses UPDATE and DELETE.
    """

    class Action(models.TextChoices):
        READ = "read", "Read"
        SEARCH = "search", "Search"
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        DELETE = "delete", "Delete"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        DENIED = "denied", "Denied"
        NOT_FOUND = "not_found", "Not found"
        ERROR = "error", "Error"

    class ActorType(models.TextChoices):
        CLIENT = "client", "API client"
        USER = "user", "User"
        SYSTEM = "system", "The control plane itself"
        ANONYMOUS = "anonymous", "A caller without valid credentials"

    chain_id = models.BigIntegerField(default=1, help_text="The hash chain (AuditChainHead) this record is in.")
    seq = models.BigIntegerField(help_text="Position in its hash chain; gaps mean deleted records.")
    recorded_at = models.DateTimeField()
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.BigIntegerField(null=True)
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=16, choices=Action.choices)
    resource_type = models.CharField(max_length=40)
    resource_id = models.CharField(max_length=64, blank=True)
    patient_id = models.BigIntegerField(null=True, help_text="Internal patient id, never the MRN.")
    # A response that spans patients (a search by name or birth date) names each of them here, so "who has
    # seen patient X" finds it; NULL for a single patient's read, which `patient_id` says alone.
    patient_ids = PatientIdsField(
        null=True, blank=True, help_text="Internal ids of every patient a multi-patient response disclosed."
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    source_ip = models.GenericIPAddressField(null=True)
    purpose_of_use = models.CharField(max_length=32, default="TREAT")
    request_id = models.CharField(max_length=64, blank=True)
    query_digest = models.CharField(max_length=64, blank=True, help_text="Keyed digest of search parameters.")
    result_count = models.IntegerField(null=True)
    served_from_cache = models.BooleanField(default=False)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # Which chain key sealed it (services.chain_key_id: a fingerprint, never the key), bound into its HMAC. NULL on
    # records sealed before keys rotated (migration 0012), which verify against each configured key.
    key_id = models.CharField(max_length=16, null=True, blank=True, help_text="Fingerprint of the key that sealed it.")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["chain_id", "seq"], name="audit_event_chain_seq"),
            models.Index(fields=["patient_id", "-recorded_at"], name="audit_event_patient"),
            models.Index(fields=["actor_type", "actor_id", "-recorded_at"], name="audit_event_actor"),
            models.Index(fields=["-recorded_at"], name="audit_event_recorded"),
            # The list filtered by action or by resource type (the dashboard's audit page), newest first by id:
            # a value's records read from the index, not the whole trail tested record by record (0010).
            models.Index(fields=["action", "-id"], name="audit_event_action"),
            models.Index(fields=["resource_type", "-id"], name="audit_event_resource"),
            # A patient's own records newest first by id (0011): the list's page for a patient in 5% of the trail
            # reads 51 of them, where (patient_id, recorded_at) left it sorting them all or scanning the partition.
            models.Index(fields=["patient_id", "-id"], name="audit_event_patient_page"),
            # Partial: single-patient reads (NULL) never touch it, so the hot path pays nothing for it.
            GinIndex(
                fields=["patient_ids"],
                opclasses=["jsonb_path_ops"],
                condition=Q(patient_ids__isnull=False),
                name="audit_event_patient_ids",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.chain_id}.{self.seq} {self.actor_name} {self.action} {self.resource_type}/{self.resource_id}"

    def save(self, *args, **kwargs):
        # A guard, not business logic: an existing record is never rewritten through the ORM.
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")


class AuditChainHead(models.Model):
    """The end of one hash chain.

    The `primary` chain takes records written inside transactions (clinical writes, commands); each
    server process appends its group-committed records to a chain of its own, so processes never
    queue on one another. Every chain other than primary is registered by a record in primary, so a
    chain deleted whole is noticed too.
    """

    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)
    # HMAC over (name, seq, last_hash): a head moved back over deleted records cannot be re-sealed.
    seal = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "audit chain head"

    def __str__(self) -> str:
        return f"audit chain {self.name} at #{self.seq}"


class AuditArchiveQuerySet(models.QuerySet):
    """Archive records are append-only, as the trail they stand in for."""

    def update(self, **kwargs):
        raise PermissionError("Audit archive records are append-only.")

    def delete(self):
        raise PermissionError("Audit archive records are append-only.")


class AuditArchive(models.Model):
    """One monthly partition of the trail moved out to a file (`audit archive --drop`) and dropped.

    It stands in for the records it replaced: `audit verify` resumes each chain at the boundaries kept here
    (`chains`), and `audit verify --archives DIR` checks the file against `sha256`. Sealed with the chain key,
    so an archive record made up to cover deleted records needs the key; append-only like the trail.
    """

    partition = models.CharField(max_length=63)
    range_start = models.DateTimeField()
    range_end = models.DateTimeField()
    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    row_count = models.BigIntegerField()
    # {"<chain id>": [[first seq, its prev_hash, last seq, its hash], ...]}: each run of consecutive seqs archived.
    chains = models.JSONField(default=dict)
    # Chains registered by records of the primary chain that the file holds (no longer in the database).
    registered_chains = models.JSONField(default=list)
    archived_by = models.CharField(max_length=150)
    archived_at = models.DateTimeField()
    seal = models.CharField(max_length=64)

    objects = AuditArchiveQuerySet.as_manager()

    class Meta:
        ordering = ["range_start"]
        # A constraint, not unique=True: that adds a second (LIKE) index on PostgreSQL no lookup here uses.
        constraints = [models.UniqueConstraint(fields=["partition"], name="audit_archive_partition_unique")]

    def __str__(self) -> str:
        return f"audit archive {self.partition} ({self.row_count} records)"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("Audit archive records are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit archive records are append-only.")
