"""Patient data. Indexes follow the queries in selectors.py; `manage.py optimize database` checks them."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import connections, models, router
from django.db.models import Q
from django.db.models.functions import Now
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from apps.clinical.identifiers import MAX_SYSTEM_LENGTH, normalize_system
from apps.clinical.invalidation import ClinicalQuerySet, connect, loaded_state, row_deleted


def default_mrn_system() -> str:
    return normalize_system(settings.MRN_SYSTEM)


class CachedClinicalModel(models.Model):
    """A row whose writes invalidate the caches of its patient's data (invalidation.py), from anywhere:
    services, a shell, a bulk update."""

    objects = ClinicalQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        loaded_state(instance)
        return instance

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:
        super().refresh_from_db(using, fields, from_queryset)
        loaded_state(self, fields)  # a save after it moves the row from what was read here

    def delete(self, using=None, keep_parents=False):
        return row_deleted(self, using, keep_parents, super().delete)

    delete.alters_data = True


# How much of a name its search form keeps.
SEARCH_FORM_LENGTH = 100


def search_form(text: str) -> str:
    """Lower-case, accents removed: 'Müller' and 'muller' find the same patient. Cut to the stored length,
    so a long search term still finds the names it starts."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower().strip()[:SEARCH_FORM_LENGTH]


class StampNow(Now):
    """Now() as `updated_at`'s database default. On SQLite, Now() is text with milliseconds ('…:50.923'), which
    sorts below the same instant written from Python ('…:50.923000'): `_lastUpdated=eq|ge<its own lastUpdated>`
    missed the row. Six fractional digits here, as Django writes a datetime; PostgreSQL's is Now()'s."""

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="STRFTIME('%%%%Y-%%%%m-%%%%d %%%%H:%%%%M:%%%%f000', 'NOW')",
                           **extra_context)  # fmt: skip


# The stamp of a row bulk_create(ignore_conflicts=True) wrote or skipped: PostgreSQL returns neither the row nor its
# stamp. The Unix epoch, version "0": no write stamps it (the database's clock), so no client or cache takes it for
# a stored version; None would break version_id() and ordering as the expression did.
UNRETURNED_STAMP = datetime(1970, 1, 1, tzinfo=UTC)

_DEFERRED = object()  # a row read without updated_at (.only(), .defer())


def _restore_stamp(obj, value) -> None:
    """Put back what a failed write found in memory: a datetime, or the field deferred again."""
    if value is _DEFERRED:
        obj.__dict__.pop("updated_at", None)
    else:
        obj.updated_at = value


class StampedQuerySet(ClinicalQuerySet):
    """A bulk update (`.filter().update()`, and `bulk_update`, which runs one a batch) moves `updated_at` too:
    FHIR's versionId, lastUpdated, ETag and `_lastUpdated` search follow any write, a data fix in a shell too. So
    does an upsert (`bulk_create(update_conflicts=True)`). On PostgreSQL a trigger (migration 0005) moves it on any
    other UPDATE, raw SQL and an older release's save of some fields included, and never sets one at or below the
    row's last (migration 0009): a later explicit value is kept; a data repair that must keep the current stamp or
    set an earlier one disables the trigger in its transaction (migrations 0006, 0009)."""

    def update(self, **kwargs) -> int:
        if "updated_at" not in kwargs:  # a conditional read answered 304, a sync missing the change
            # SQLite: the instant from Python, stored as every other write stores it (Now() is millisecond text).
            kwargs["updated_at"] = timezone.now() if connections[self.db].vendor == "sqlite" else Now()
        return super().update(**kwargs)

    update.alters_data = True

    def bulk_create(self, objs, *args, **kwargs):
        """No row keeps StampField's expression in memory (`version_id()` of it raised TypeError, a cache pickled
        it): a failed insert restores each row's previous value; a row PostgreSQL returned nothing for
        (`ignore_conflicts=True`: no RETURNING, no id either, so nothing to re-read it by) gets UNRETURNED_STAMP."""
        update_fields = kwargs.get("update_fields")
        if kwargs.get("update_conflicts") and update_fields and "updated_at" not in update_fields:
            kwargs["update_fields"] = [*update_fields, "updated_at"]  # the row changed: so does its version
        objs = list(objs)
        previous = [obj.__dict__.get("updated_at", _DEFERRED) for obj in objs]
        try:
            created = super().bulk_create(objs, *args, **kwargs)
        except BaseException:
            for obj, value in zip(objs, previous, strict=True):
                _restore_stamp(obj, value)
            raise
        for obj in created:
            if hasattr(obj.__dict__.get("updated_at"), "resolve_expression"):
                obj.updated_at = UNRETURNED_STAMP
        return created

    bulk_create.alters_data = True


class StampField(models.DateTimeField):
    """auto_now from the database's clock on PostgreSQL, whose clock `.update()`, the triggers and the default stamp
    with: a save stamped by an app host whose clock ran behind wrote a lastUpdated below the row's last one, which a
    `_lastUpdated=gt<last seen>` sync then missed. Every ORM write writes the default's expression, not DEFAULT
    (the patient's column has it only from migration 0008 on: an INSERT before it, in a rolling upgrade, wrote
    NULL); an INSERT's RETURNING brings the stamp back (Django's db_returning, for a field with a db_default), and so
    does an UPDATE's (StampedClinicalModel._do_update). SQLite (`make run`, one host): the app's clock, as
    auto_now."""

    def pre_save(self, model_instance, add):
        using = router.db_for_write(type(model_instance), instance=model_instance)
        if not self.auto_now or not self.has_db_default() or connections[using].vendor != "postgresql":
            return super().pre_save(model_instance, add)
        value = self.db_default.copy()
        setattr(model_instance, self.attname, value)
        return value


class StampedClinicalModel(CachedClinicalModel):
    """A row FHIR serves with meta.versionId and meta.lastUpdated: `updated_at` follows every write, the ORM's
    (auto_now, on PostgreSQL from the database's clock: StampField; a save of some fields writes it too) and any
    other: the database default (Now(), PostgreSQL's statement_timestamp()) fills it where a writer leaves it out
    (the loader's COPY, an older release's INSERT during a rolling upgrade), and on PostgreSQL a BEFORE UPDATE
    trigger (migration 0005) where an UPDATE leaves it as it was (raw SQL, an older release's save of some
    fields)."""

    updated_at = StampField(auto_now=True, db_default=StampNow())

    objects = StampedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        """A save that fails (a duplicate MRN, caught) leaves `updated_at` as it found it, not StampField's
        expression, which `version_id()` could not read and a cache would pickle."""
        previous = self.__dict__.get("updated_at", _DEFERRED)
        update_fields = kwargs.get("update_fields")
        if update_fields:  # a save of some fields is a write as any: the version changes
            kwargs["update_fields"] = {*update_fields, "updated_at"}
        elif update_fields is None and "updated_at" in self.get_deferred_fields() and not self._state.adding:
            self.updated_at = timezone.now()  # saved with the fields read (Django writes no deferred field)
        try:
            super().save(*args, **kwargs)
        except BaseException:
            _restore_stamp(self, previous)
            raise

    def _do_update(self, base_qs, using, pk_val, values, update_fields, forced_update):
        """An UPDATE that writes the database's now() (StampField, PostgreSQL) returns it, in the same statement
        (RETURNING, as Django returns an INSERT's stamp; 5.2 returns nothing from an UPDATE): the row in memory holds
        the stamp the database wrote, with no query more. Read after the commit, it was a later write's (or none,
        the row deleted) beside this write's fields."""
        stamped = any(field.attname == "updated_at" and hasattr(value, "resolve_expression")
                      for field, _, value in values)  # fmt: skip
        if not stamped or self._meta.select_on_save:
            return super()._do_update(base_qs, using, pk_val, values, update_fields, forced_update)
        query = base_qs.filter(pk=pk_val).query.chain(UpdateQuery)
        query.add_update_fields(values)
        query.annotations = {}  # as QuerySet._update
        sql, params = query.get_compiler(using).as_sql()
        connection = connections[using]
        column = connection.ops.quote_name(self._meta.get_field("updated_at").column)
        with connection.cursor() as cursor:
            cursor.execute(f"{sql} RETURNING {column}", params)
            row = cursor.fetchone()
        if row is None:  # no such row: save() inserts it (and RETURNING brings that stamp back)
            return False
        self.updated_at = row[0]
        return True


class PatientQuerySet(StampedQuerySet):
    """An update of names keeps their search forms, which name search reads, in step (a data fix in a shell
    renamed a patient whom a search by the new name then did not find, and one by the old name still did)."""

    def update(self, **kwargs) -> int:
        for name, search in (("family_name", "family_search"), ("given_name", "given_search")):
            if name in kwargs and search not in kwargs:
                if not isinstance(kwargs[name], str):
                    raise TypeError(f"Update {name} with a string (or save each patient): its search form is "
                                    "computed in Python.")  # fmt: skip
                kwargs[search] = search_form(kwargs[name])
        return super().update(**kwargs)  # with updated_at (StampedQuerySet)

    update.alters_data = True

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs, fields = list(objs), list(fields)
        for name, search in (("family_name", "family_search"), ("given_name", "given_search")):
            if name in fields and search not in fields:
                for obj in objs:
                    setattr(obj, search, search_form(getattr(obj, name)))
                fields.append(search)  # each row's form rides in the same CASE as its name
        return super().bulk_update(objs, fields, *args, **kwargs)

    bulk_update.alters_data = True


class Patient(StampedClinicalModel):
    """A patient, identified by an MRN unique within its identifier system. Deletion is soft."""

    class Sex(models.TextChoices):  # FHIR administrative-gender
        MALE = "male", "Male"
        FEMALE = "female", "Female"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Unknown"

    identifier_system = models.CharField(max_length=MAX_SYSTEM_LENGTH, default=default_mrn_system)
    mrn = models.CharField("MRN", max_length=64)
    family_name = models.CharField(max_length=100)
    given_name = models.CharField(max_length=100)
    # Lower-cased, accent-free copies for prefix search (FHIR `name`, `family`, `given`), cut to their
    # length: decomposing can lengthen a name ("ﬃ" is three letters).
    family_search = models.CharField(max_length=SEARCH_FORM_LENGTH, editable=False)
    given_search = models.CharField(max_length=SEARCH_FORM_LENGTH, editable=False)
    birth_date = models.DateField()
    sex = models.CharField(max_length=8, choices=Sex.choices, default=Sex.UNKNOWN)
    is_deleted = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["identifier_system", "mrn"], name="clinical_patient_identifier_unique"),
        ]
        indexes = [
            # Prefix search on active patients; varchar_pattern_ops lets LIKE 'abc%' use the index.
            models.Index(
                fields=["family_search", "given_search"],
                name="clinical_patient_family",
                opclasses=["varchar_pattern_ops", "varchar_pattern_ops"],
                condition=Q(is_deleted=False),
            ),
            models.Index(
                fields=["given_search"],
                name="clinical_patient_given",
                opclasses=["varchar_pattern_ops"],
                condition=Q(is_deleted=False),
            ),
            models.Index(fields=["birth_date"], name="clinical_patient_birth", condition=Q(is_deleted=False)),
            # `Patient?_lastUpdated=...` alone (a sync of changed patients): a range on it, not a scan of all.
            models.Index(fields=["updated_at"], name="clinical_patient_updated", condition=Q(is_deleted=False)),
        ]

    def __str__(self) -> str:
        return f"Patient {self.pk}"  # never the MRN or the name: this string reaches logs

    def save(self, *args, **kwargs) -> None:
        """Stores the system in its one spelling whatever wrote it (services, admin, shell): spelt as typed,
        `HTTP://Hospital.example.org/mrn/` let one MRN be registered again beside `http://...org/mrn`."""
        self.identifier_system = normalize_system(self.identifier_system)
        # The search forms follow the names whatever wrote them (a rename in a shell), as the system's spelling
        # does; a save of other fields (a soft delete) or of a row read without its names leaves them.
        update_fields = kwargs.get("update_fields")
        names = [name for name in ("family_name", "given_name") if name in self.__dict__]
        if update_fields is not None:
            names = [name for name in names if name in update_fields]
        for name in names:
            search = name.replace("_name", "_search")
            setattr(self, search, search_form(getattr(self, name)))
            if update_fields is not None:
                kwargs["update_fields"] = update_fields = {*update_fields, search}
        super().save(*args, **kwargs)  # with updated_at: FHIR's versionId and ETag follow any write

    def clean(self) -> None:
        # Before full_clean's uniqueness check, which must compare the spelling that will be stored.
        self.identifier_system = normalize_system(self.identifier_system)


class Encounter(StampedClinicalModel):
    """A contact between a patient and the hospital (FHIR Encounter)."""

    class EncounterClass(models.TextChoices):  # v3 ActCode
        AMBULATORY = "AMB", "Ambulatory"
        EMERGENCY = "EMER", "Emergency"
        INPATIENT = "IMP", "Inpatient"
        OBSERVATION = "OBSENC", "Observation"
        VIRTUAL = "VR", "Virtual"

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        ARRIVED = "arrived", "Arrived"
        TRIAGED = "triaged", "Triaged"
        IN_PROGRESS = "in-progress", "In progress"
        ONLEAVE = "onleave", "On leave"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"
        ENTERED_IN_ERROR = "entered-in-error", "Entered in error"
        UNKNOWN = "unknown", "Unknown"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="encounters", db_index=False)
    encounter_class = models.CharField(max_length=8, choices=EncounterClass.choices)
    status = models.CharField(max_length=20, choices=Status.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["patient", "-period_start"], name="clinical_encounter_patient"),
            models.Index(fields=["patient"], name="clinical_encounter_active", condition=Q(status="in-progress")),
        ]

    def __str__(self) -> str:
        return f"Encounter {self.pk}"


class Observation(StampedClinicalModel):
    """A measurement: a vital sign or a laboratory result, with a LOINC code and a UCUM unit."""

    class Category(models.TextChoices):
        VITAL_SIGNS = "vital-signs", "Vital signs"
        LABORATORY = "laboratory", "Laboratory"

    class Status(models.TextChoices):
        REGISTERED = "registered", "Registered"
        PRELIMINARY = "preliminary", "Preliminary"
        FINAL = "final", "Final"
        AMENDED = "amended", "Amended"
        CORRECTED = "corrected", "Corrected"
        CANCELLED = "cancelled", "Cancelled"
        ENTERED_IN_ERROR = "entered-in-error", "Entered in error"
        UNKNOWN = "unknown", "Unknown"

    # Statuses of a reading that is not one: retracted (entered in error) or never completed. The latest value
    # of a code skips them: a retracted 300/min hid the valid 80/min before it.
    NOT_READINGS = (Status.CANCELLED, Status.ENTERED_IN_ERROR)

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="observations", db_index=False)
    encounter = models.ForeignKey(
        Encounter, on_delete=models.SET_NULL, null=True, blank=True, related_name="observations", db_index=False
    )
    category = models.CharField(max_length=16, choices=Category.choices)
    code = models.CharField(max_length=16, help_text="LOINC code")
    # Panels (blood pressure, vital signs) carry no value of their own; blood pressure has components.
    value = models.FloatField(null=True, blank=True)
    unit = models.CharField(max_length=16, blank=True, help_text="UCUM code")
    components = models.JSONField(null=True, blank=True)
    effective_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.FINAL)

    class Meta:
        indexes = [
            # A patient's series of one code, newest first, answered from the index alone.
            models.Index(
                fields=["patient", "code", "-effective_at"],
                name="clinical_obs_patient_code",
                include=["value", "unit"],
            ),
            # A patient's observations of one category, newest first (FHIR Observation search).
            models.Index(fields=["patient", "category", "-effective_at"], name="clinical_obs_patient_cat"),
            # Range scans over time (retention, analytics) on a table that grows in time order.
            BrinIndex(fields=["effective_at"], name="clinical_obs_effective_brin"),
        ]

    def __str__(self) -> str:
        return f"Observation {self.pk}"


class MedicationRequest(StampedClinicalModel):
    """A prescription (FHIR MedicationRequest) coded in RxNorm."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ON_HOLD = "on-hold", "On hold"
        CANCELLED = "cancelled", "Cancelled"
        COMPLETED = "completed", "Completed"
        ENTERED_IN_ERROR = "entered-in-error", "Entered in error"
        STOPPED = "stopped", "Stopped"
        DRAFT = "draft", "Draft"
        UNKNOWN = "unknown", "Unknown"

    class Intent(models.TextChoices):
        PROPOSAL = "proposal", "Proposal"
        PLAN = "plan", "Plan"
        ORDER = "order", "Order"
        ORIGINAL_ORDER = "original-order", "Original order"
        REFLEX_ORDER = "reflex-order", "Reflex order"
        FILLER_ORDER = "filler-order", "Filler order"
        INSTANCE_ORDER = "instance-order", "Instance order"
        OPTION = "option", "Option"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="medication_requests", db_index=False)
    encounter = models.ForeignKey(
        Encounter, on_delete=models.SET_NULL, null=True, blank=True, related_name="medication_requests", db_index=False
    )
    rxnorm_code = models.CharField(max_length=16)
    display = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    intent = models.CharField(max_length=20, choices=Intent.choices, default=Intent.ORDER)
    authored_at = models.DateTimeField()
    dosage_text = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["patient", "status", "-authored_at"], name="clinical_medreq_patient"),
            models.Index(
                fields=["patient", "-authored_at"], name="clinical_medreq_active", condition=Q(status="active")
            ),
        ]

    def __str__(self) -> str:
        return f"MedicationRequest {self.pk}"


connect(Patient, Encounter, Observation, MedicationRequest)
