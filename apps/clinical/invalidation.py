"""Cache invalidation for every write of patient data, wherever it comes from.

services.py wrote through here already; a data fix in `manage.py shell` (`p.save()`, `.filter().update()`,
`.delete()`, `bulk_create`) did not, and the cards, vitals and lists cached before it were served for their
TTL (30 min for a patient card). Each write bumps the scopes its rows are cached under after it, in its
transaction, published when it commits (CacheStack.invalidate_scopes), once per scope and write. The loader's COPY
path writes new patients with no ORM: nothing of them can be cached yet, so it bumps nothing. Deletes bump from
Model.delete and QuerySet.delete, not post_delete: a receiver costs Django's fast delete (each row read first).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

from django.db import connections, models, router, transaction
from django.db.models.signals import post_save, pre_save

from apps.caching.stack import invalidate_scopes

# A write's scopes are gathered here while a bulk_update() runs its batches' update() one by one.
_gathering: ContextVar[set[str] | None] = ContextVar("clinical_scopes_gathering", default=None)

# Patients bulk-created in the connection's open transaction (the loader's embedded path): nothing could have been
# cached about them before it commits (another connection cannot see them, and a missing patient is never cached),
# so the rows bulk-created for them in the same transaction bump nothing (a bump per patient made the load slower).
# Each bulk_create's ids count while its on_commit callback is pending: run at commit, dropped by a rollback (of the
# transaction or of a savepoint), whose ids SQLite gives again (sqlite_sequence rolls back with it).
_CREATED = "_clinical_patients_created_in_transaction"
_TRACKED = ("identifier_system", "mrn", "patient_id")


def loaded_state(instance: models.Model, fields: Iterable[str] | None = None) -> None:
    """Remember what a row was when read (Model.from_db, refresh_from_db: of `fields` only, where given), so a
    write that moves it bumps where it was too. None: not read (deferred)."""
    values = instance.__dict__
    if fields is None:  # every row read (from_db): kept cheap
        instance._cache_scope_loaded = (values.get("identifier_system"), values.get("mrn"), values.get("patient_id"))
        return
    loaded = dict(zip(_TRACKED, getattr(instance, "_cache_scope_loaded", (None, None, None)), strict=True))
    for name in _TRACKED:
        if name in fields or name.removesuffix("_id") in fields:
            loaded[name] = values.get(name)
    instance._cache_scope_loaded = tuple(loaded.values())


def row_saving(sender, instance, raw: bool = False, using: str = "default", update_fields=None, **kwargs) -> None:
    """pre_save: a row read without its identifier (only(), defer()) that is about to write one reads the stored
    one, so the save bumps the lookup it leaves (one query, on that path only)."""
    if raw or instance._state.adding:
        return
    tracked = ("identifier_system", "mrn") if sender._meta.model_name == "patient" else ("patient_id",)
    loaded = dict(zip(_TRACKED, getattr(instance, "_cache_scope_loaded", (None, None, None)), strict=True))
    if all(loaded[name] is not None for name in tracked):
        return
    written = (
        instance.__dict__.keys() if update_fields is None else {*update_fields, *(f"{f}_id" for f in update_fields)}
    )
    if not written & set(tracked):
        return
    stored = sender._base_manager.using(using).filter(pk=instance.pk).values_list(*tracked).first()
    if stored is not None:
        loaded.update(zip(tracked, stored, strict=True))
        instance._cache_scope_loaded = tuple(loaded.values())


def _identifier_scope(system: str | None, mrn: str | None) -> set[str]:
    from apps.clinical.services import identifier_scope  # services imports the models this module serves

    return {identifier_scope(system, mrn)} if system is not None and mrn is not None else set()


def row_scopes(instance: models.Model, *, created: bool = False) -> set[str]:
    """The scopes a write of this row changes: its patient's (cards, vitals, lists) and, for a patient, the MRN
    lookups of its identifier as read and as written (a change of MRN, a soft delete)."""
    from apps.clinical.models import Patient
    from apps.clinical.services import patient_scope

    loaded_system, loaded_mrn, loaded_patient = getattr(instance, "_cache_scope_loaded", (None, None, None))
    if isinstance(instance, Patient):
        values = instance.__dict__
        if "identifier_system" not in values or "mrn" not in values:  # deferred: read them, rarely
            with contextlib.suppress(Patient.DoesNotExist):  # deleted: as read, if it was
                instance.refresh_from_db(fields=["identifier_system", "mrn"])
        scopes = _identifier_scope(loaded_system, loaded_mrn) | _identifier_scope(values.get("identifier_system"),
                                                                                   values.get("mrn"))  # fmt: skip
        if not created:  # a new id has nothing cached
            scopes.add(patient_scope(instance.pk))
        return scopes
    return {patient_scope(patient_id) for patient_id in (loaded_patient, instance.patient_id) if patient_id is not None}


def _bump(scopes: Iterable[str], using: str) -> None:
    scopes = set(scopes)
    if not scopes:
        return
    gathering = _gathering.get()
    if gathering is not None:
        gathering.update(scopes)
    else:
        invalidate_scopes(*sorted(scopes))  # in the write's transaction where it has one, else at once


def in_transaction(using: str) -> contextlib.AbstractContextManager:
    """A write and its bump in one transaction: the caller's where it has one, as it is (an atomic block without
    a savepoint there made a write that raised, caught by the caller, break its transaction), else a new one."""
    return contextlib.nullcontext() if connections[using].in_atomic_block else transaction.atomic(using=using)


@contextlib.contextmanager
def gathered(using: str) -> Iterator[set[str]]:
    """Bump the scopes of every row written inside once each, after the writes, in the same transaction."""
    if _gathering.get() is not None:  # an outer write bumps them
        yield _gathering.get()
        return
    scopes: set[str] = set()
    with in_transaction(using):
        token = _gathering.set(scopes)
        try:
            yield scopes
        finally:
            _gathering.reset(token)
        if scopes:
            invalidate_scopes(*sorted(scopes))


def patients_created(patients: Iterable[models.Model], using: str) -> None:
    ids = {patient.pk for patient in patients if patient.pk is not None}
    if ids and connections[using].in_atomic_block:
        connection = connections[using]

        def forget() -> None:  # committed: anything may be cached of them from now on
            connection.__dict__.pop(_CREATED, None)

        connection.__dict__.setdefault(_CREATED, []).append((forget, ids))
        transaction.on_commit(forget, using=using)


def created_here(using: str) -> set[int]:
    """Patients bulk-created in the open transaction and not rolled back since."""
    connection = connections[using]
    created = connection.__dict__.get(_CREATED)
    if not connection.in_atomic_block or not created:
        return set()
    pending = {id(func) for _sids, func, _robust in connection.run_on_commit}
    created[:] = [(forget, ids) for forget, ids in created if id(forget) in pending]  # rolled back: given again
    return set().union(*(ids for _forget, ids in created))


def row_written(sender, instance, created: bool = False, using: str = "default", **kwargs) -> None:
    """post_save of every clinical model."""
    _bump(row_scopes(instance, created=created), using)
    loaded_state(instance)  # the next save of this instance moves it from here


def row_deleted(instance: models.Model, using: str | None, keep_parents: bool, delete) -> tuple[int, dict]:
    """Model.delete of every clinical model: the scopes as the row is, bumped once it is gone. Rows a patient's
    delete cascades to are that patient's: its scope covers them."""
    using = using or router.db_for_write(type(instance), instance=instance)
    with in_transaction(using):
        scopes = row_scopes(instance)
        result = delete(using=using, keep_parents=keep_parents)
        _bump(scopes, using)
    return result


def connect(*senders: type[models.Model]) -> None:
    for sender in senders:
        pre_save.connect(row_saving, sender=sender, dispatch_uid=f"clinical-cache-{sender.__name__}-saving")
        post_save.connect(row_written, sender=sender, dispatch_uid=f"clinical-cache-{sender.__name__}-saved")


class ClinicalQuerySet(models.QuerySet):
    """Bulk writes bump the scopes of the rows they change, once each, in the write's transaction."""

    def _patient_ids(self) -> set[int]:
        field = "pk" if self.model._meta.model_name == "patient" else "patient_id"
        return set(self.order_by().values_list(field, flat=True).distinct())

    def _scopes_of(self, ids: set[int]) -> set[str]:
        from apps.clinical.services import patient_scope

        scopes = {patient_scope(patient_id) for patient_id in ids}
        if self.model._meta.model_name == "patient" and ids:
            rows = self.model._base_manager.using(self.db).filter(pk__in=ids).values_list("identifier_system", "mrn")
            for system, mrn in rows:
                scopes |= _identifier_scope(system, mrn)
        return scopes

    def update(self, **kwargs) -> int:
        moves = {"patient", "patient_id", "identifier_system", "mrn"} & set(kwargs)
        with in_transaction(self.db):
            if moves:  # where the rows were and where they go: their ids, read before the filter may miss them
                pks = set(self.order_by().values_list("pk", flat=True))
                before = self._scopes_of(self._patient_ids())
                count = super().update(**kwargs)
                after = self.model._base_manager.using(self.db).filter(pk__in=pks)
                _bump(before | self._scopes_of(ClinicalQuerySet._patient_ids(after)), self.db)
                return count
            scopes = self._scopes_of(self._patient_ids())
            count = super().update(**kwargs)
            _bump(scopes, self.db)
            return count

    update.alters_data = True

    def delete(self):
        """One query for the rows' patients, then Django's delete (fast: no row is read), then one bump."""
        with in_transaction(self.db):
            scopes = self._scopes_of(self._patient_ids())
            result = super().delete()
            _bump(scopes, self.db)
            return result

    delete.alters_data = True

    def bulk_create(self, objs, *args, **kwargs):
        with in_transaction(self.db):
            objs = super().bulk_create(objs, *args, **kwargs)
            if self.model._meta.model_name == "patient":
                patients_created(objs, self.db)  # new ids: nothing cached under them, nor a lookup that found none
                if kwargs.get("update_conflicts"):
                    _bump(set().union(*(row_scopes(o) for o in objs)), self.db)
            else:
                ids = {o.patient_id for o in objs} - created_here(self.db)
                _bump(self._scopes_of(ids), self.db)
        for obj in objs:
            loaded_state(obj)
        return objs

    bulk_create.alters_data = True

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs = list(objs)
        with gathered(self.db):  # with the scopes of the update() each batch is
            count = super().bulk_update(objs, fields, *args, **kwargs)
            _bump(set().union(*(row_scopes(o) for o in objs)), self.db)
        for obj in objs:
            loaded_state(obj)
        return count

    bulk_update.alters_data = True
