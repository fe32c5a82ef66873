"""A server process remembers, by deployment, its last failed load (serving._failures) and a lock that lets one
load at a time run (serving._loads). Neither was ever pruned: every deployment deleted, disabled or replaced (deleted
and created again under its name, a new pk) left both entries for the life of every server process. The prune that
lets go of disabled deployments' models (every PRUNE_SECONDS, from the inference views) drops them too; a load lock
only while no call holds it. The loads fail for real: nf4 needs CUDA, which this host has not."""

from __future__ import annotations

import threading

import pytest

from apps.inference import serving
from apps.inference.models import ModelDeployment
from tests.inference.support import deployment, embed

pytestmark = pytest.mark.django_db


def _failed_here(api, token, name: str) -> ModelDeployment:
    row = deployment(name, quantization="nf4")
    assert embed(api, token, name).status_code == 503
    assert row.pk in serving._failures and row.pk in serving._loads
    return row


def test_deleted_disabled_and_replaced_deployments_leave_no_entries(api, token):
    gone = {name: _failed_here(api, token, name).pk for name in ("deleted", "disabled", "replaced")}
    ModelDeployment.objects.filter(pk=gone["deleted"]).delete()
    ModelDeployment.objects.filter(pk=gone["disabled"]).update(enabled=False)
    ModelDeployment.objects.filter(pk=gone["replaced"]).delete()
    replacement = _failed_here(api, token, "replaced")

    serving._pruned_at[0] = float("-inf")  # the prune is due: the next call of an inference endpoint runs it
    assert embed(api, token, "replaced").status_code == 503
    for name, pk in gone.items():
        assert pk not in serving._failures, name  # was kept for the life of the process
        assert pk not in serving._loads, name
    assert replacement.pk in serving._failures and replacement.pk in serving._loads  # enabled: kept


def test_a_load_lock_someone_holds_is_kept_and_a_lock_dropped_meanwhile_is_not_used(monkeypatch):
    pk = 2**31 - 1  # no such deployment
    held = serving._load_lock(pk)
    held.acquire()  # a load of it in progress
    serving.served_prune()
    assert serving._loads.get(pk) is held  # dropped, the next call would have loaded beside the one going on
    held.release()

    # A call took the lock from _loads, the prune dropped it, another call registered and holds a new one; then
    # the first acquires the lock it took: it must wait for the registered one instead of loading beside it.
    stale = serving._load_lock(pk)
    serving.served_prune()
    assert pk not in serving._loads
    registered = serving._load_lock_acquire(pk, blocking=True)
    assert registered is not stale
    handed = iter([stale])
    real = serving._load_lock
    monkeypatch.setattr(serving, "_load_lock", lambda key: next(handed, None) or real(key))  # the stale one first
    assert serving._load_lock_acquire(pk, blocking=False) is None  # the registered one is held
    assert not stale.locked()  # taken, then let go of

    handed = iter([stale])
    acquired: list[threading.Lock] = []
    waiter = threading.Thread(target=lambda: acquired.append(serving._load_lock_acquire(pk, blocking=True)))
    waiter.start()
    waiter.join(timeout=1)
    assert waiter.is_alive() and not acquired  # waits on the registered lock
    registered.release()
    waiter.join(timeout=60)
    assert acquired == [registered]
    registered.release()
    serving._loads.pop(pk, None)
