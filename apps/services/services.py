"""Every write to the service registry: the API, the admin and seeding go through here."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, router, transaction
from django.db.models import Value
from django.db.models.deletion import Collector
from django.db.models.functions import Lower

from apps.services.models import Service
from apps.services.routes import route_prefix_problem

EDITABLE_FIELDS = (
    "name",
    "slug",
    "kind",
    "base_url",
    "route_prefix",
    "owner_team",
    "description",
    "is_active",
    "slo_p95_ms",
    "slo_p99_ms",
    "slo_avg_ms",
    "slo_min_rps",
    "slo_error_rate_pct",
)


@transaction.atomic
def service_create(*, name: str, slug: str, editor=None, **fields: Any) -> Service:
    """Register a service; SLO targets not given take the brief's defaults. `editor`: the staff user
    making the change (None: the product itself, e.g. seeding)."""
    service = Service(name=name, slug=slug, **_editable(fields))
    _validate(service, editor=editor, name_written=True)
    _save_or_refuse(service, editor=editor, name_written=True)
    return service


@transaction.atomic
def service_update(*, service: Service, editor=None, **fields: Any) -> Service:
    """Change the given fields of a service, validating the whole row (e.g. p95 ≤ p99) before it is saved.
    The row is locked and re-read first, and only these fields are written: a whole-row save of the instance
    the caller loaded wrote back its other fields over a concurrent edit (an admin changing the owner while
    the API changed a target), and validated the targets against values no longer stored."""
    fields = _editable(fields)
    current = Service.objects.select_for_update().filter(pk=service.pk).first()
    if current is None:
        raise ValidationError("This service was deleted meanwhile.")
    # A name sent as stored (a PUT of the whole row) is not a rename: a stored look-alike pair stays editable.
    name_written = "name" in fields and fields["name"] != current.name
    if "base_url" in fields:
        from apps.benchmarks.selectors import base_url_change_refusal

        if refusal := base_url_change_refusal(service=current, user=editor, base_url=fields["base_url"]):
            raise ValidationError({"base_url": refusal})
    for field, value in fields.items():
        setattr(current, field, value)
    _validate(current, editor=editor, name_written=name_written)
    _save_or_refuse(current, editor=editor, name_written=name_written, update_fields=[*fields, "updated_at"])
    for field in (*EDITABLE_FIELDS, "updated_at"):
        setattr(service, field, getattr(current, field))
    return service


def _validate(service: Service, *, editor, name_written: bool) -> None:
    # The prefix is checked by route_prefix_check, whose message about a service hidden from the editor says
    # "overlaps", as admin's does, before the database constraint's "another service has this prefix".
    # The name is normalised and checked only when it is written: a stored look-alike pair (services.W003)
    # stays editable in its other fields until an administrator renames one of them.
    service.slug = normalize_slug(service.slug)
    if name_written:
        service.name = normalize_name(service.name)
    # Name and slug (the only unique fields) are name_and_slug_check's: Django's own "Service with this Slug
    # already exists." said so of a service hidden from the editor too.
    service.full_clean(validate_constraints=False, validate_unique=False)
    name_and_slug_check(name=service.name if name_written else None, slug=service.slug, service_pk=service.pk,
                        editor=editor)  # fmt: skip
    route_prefix_check(route_prefix=service.route_prefix, service_pk=service.pk, editor=editor)


def normalize_slug(slug: str) -> str:
    """The slug as stored: lower case. "Triage" and "triage" were two services, two URLs, one name to a reader."""
    return slug.lower() if isinstance(slug, str) else slug


def normalize_name(name: str) -> str:
    """The name as stored: NFKC (a full-width or compatibility form is its plain one: full-width "EMR" is plain "EMR"),
    surrounding whitespace dropped and each run of it one space (a page shows "EMR  triage" as "EMR triage")."""
    return " ".join(unicodedata.normalize("NFKC", name).split()) if isinstance(name, str) else name


def name_key(name: str) -> str:
    """What a reader tells names apart by: the normalised name, case folded. Two services with one key read as
    one in admin, the dashboard and every service picker (alert rules, benchmarks, metrics)."""
    return normalize_name(name).casefold()


def _look_alike_taken(name: str, service_pk: int | None) -> list[int]:
    """The ids of the other services whose name reads as `name`."""
    # Rows stored before names were normalised may hold full-width "EMR" or "EMR  " (the database's constraint folds
    # only case), so every other name is normalised here: a registry is tens of rows, not millions.
    others = Service.objects.exclude(pk=service_pk) if service_pk else Service.objects.all()
    key = name_key(name)
    return [pk for pk, other in others.values_list("pk", "name").iterator() if name_key(other) == key]


def _taken_in_any_case(field: str, value: str, service_pk: int | None) -> list[int]:
    """The ids of the other services whose `field` is `value` in some case."""
    # Folded by the database, as its constraints fold (service_name_unique_any_case), not by Python's lower().
    others = Service.objects.exclude(pk=service_pk) if service_pk else Service.objects.all()
    return list(others.alias(folded=Lower(field)).filter(folded=Lower(Value(value))).values_list("pk", flat=True))


def name_and_slug_check(
    *, name: str | None = None, slug: str | None = None, service_pk: int | None, editor=None
) -> None:
    """Refuse, on its field, a name or a slug another service has in some case (the database constraints hold
    the same rule against a race, without a field to name). Taken only by services hidden from `editor` (None:
    every service is theirs to know of), it is "not available", without saying another service has it: the
    answer confirmed that a hidden service of that name or slug exists."""
    from apps.services.selectors import visible_service_ids

    visible = visible_service_ids(editor) if editor is not None else None

    def said(field: str, taken_by: list[int], message: str) -> str:
        hidden_only = visible is not None and not visible.intersection(taken_by)
        return f"This {field} is not available: choose another." if hidden_only else message

    errors = {}
    if isinstance(name, str) and name and (taken_by := _taken_in_any_case("name", name, service_pk)):
        errors["name"] = said("name", taken_by, "Another service has this name (in some case).")
    elif isinstance(name, str) and name and (taken_by := _look_alike_taken(name, service_pk)):
        errors["name"] = said("name", taken_by, (
            "Another service has a name that reads the same (full-width or compatibility letters, spaces or "
            "case aside): choose one that differs in its letters."
        ))  # fmt: skip
    if isinstance(slug, str) and slug and (taken_by := _taken_in_any_case("slug", slug, service_pk)):
        errors["slug"] = said("slug", taken_by, "Another service has this slug (in some case).")
    if errors:
        raise ValidationError(errors)


def _save_or_refuse(service: Service, *, editor, name_written: bool, update_fields: list[str] | None = None) -> None:
    """Save, refusing on the field when another save took the same name, slug or route prefix between this
    one's checks and its insert (both pass the checks; the database keeps one): a 400, not a 500."""
    try:
        with transaction.atomic():
            service.save(update_fields=update_fields)
    except IntegrityError:
        # The other save is committed now (the insert waited for it).
        _validate(service, editor=editor, name_written=name_written)
        raise


def route_prefix_check(*, route_prefix: str, service_pk: int | None, editor) -> None:
    """A service's metrics are the routes under its prefix, so a prefix covering (or inside) a service
    hidden from the editor would show them that service's traffic through their own. A route is owned by
    the longest prefix it starts with, so two services with the same prefix would each count all its
    traffic (twice the load in the totals, each one's alerts and forecasts on the other's requests). A new
    prefix also meets apps/services/routes.py's rules (ASCII, whole segments, none of the product's routes)."""
    from apps.services.selectors import visible_service_ids

    if not route_prefix:
        return
    visible = visible_service_ids(editor) if editor is not None else None
    if visible is not None:
        others = Service.objects.exclude(pk__in=[*visible, service_pk or 0]).exclude(route_prefix="")
        prefixes = others.values_list("route_prefix", flat=True)
        if any(other.startswith(route_prefix) or route_prefix.startswith(other) for other in prefixes):
            raise ValidationError(
                {"route_prefix": "It overlaps the routes of a service you do not see; choose a narrower one."}
            )
    if problem := _new_route_prefix_problem(route_prefix, service_pk):
        raise ValidationError({"route_prefix": problem})
    if Service.objects.exclude(pk=service_pk or 0).filter(route_prefix=route_prefix).exists():
        raise ValidationError({"route_prefix": "Another service has this route prefix: a route is one service's."})


def _new_route_prefix_problem(route_prefix: str, service_pk: int | None) -> str | None:
    """The rules of apps/services/routes.py, for a prefix being set: one a service had before them (e.g.
    clinical-api on api/v1/, an admin's choice) is kept, and its other fields stay editable (seed_demo moves a
    demo service's base URL), until the prefix itself is changed."""
    if service_pk and Service.objects.filter(pk=service_pk, route_prefix=route_prefix).exists():
        return None
    return route_prefix_problem(route_prefix)


@transaction.atomic
def service_ensure(*, slug: str, **fields: Any) -> tuple[Service, bool]:
    """Create a service if its slug is new; leave an existing one as admins edited it."""
    slug = normalize_slug(slug)
    existing = Service.objects.filter(slug=slug).first()
    if existing is not None:
        return existing, False
    return service_create(slug=slug, **fields), True


def _editable(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"Not editable on Service: {', '.join(sorted(unknown))}")
    return fields


def service_dependents(service: Service) -> dict[str, int]:
    """What deleting this service would delete with it (benchmark plans and runs, alert rules and their
    alerts, forecasts...: every row that cascades from it) or leave without their service (its model
    deployments, rate limit policies and optimization runs: links set to empty), counted by kind; its
    visibility rows aside."""
    deleted, detached = _linked_rows(service)
    return dict(deleted + detached)


def _linked_rows(service: Service) -> tuple[Counter[str], Counter[str]]:
    # Detached rows matter as much as deleted ones: a deployment of no service is shown to every staff role
    # (a restricted service's deployment opened to all), a rate limit policy's p95 threshold without its
    # service never fires, and an optimization run of no service reads as one over every service, shown to
    # all (its figures were the hidden service's).
    collector = Collector(using=router.db_for_write(Service))
    collector.collect([service])
    deleted: Counter[str] = Counter()
    for model, instances in collector.data.items():
        if model is not Service and not model._meta.auto_created:
            deleted[str(model._meta.verbose_name_plural)] += len(instances)
    for rows in collector.fast_deletes:
        if not rows.model._meta.auto_created and (found := rows.count()):
            deleted[str(rows.model._meta.verbose_name_plural)] += found
    detached: Counter[str] = Counter()
    for (field, _value), batches in collector.field_updates.items():
        if field.related_model is not Service:  # links between rows deleted with it: counted above
            continue
        for rows in batches:
            found = len(rows) if isinstance(rows, (list, tuple, set)) else rows.count()
            if found:
                detached[str(field.model._meta.verbose_name_plural)] += found
    return deleted, detached


def service_delete_refusal(service: Service) -> str | None:
    """Why this service may not be deleted, or None. Its rows are the record of what it went through (a
    benchmark run, an alert that paged someone); deleting the service deleted them all, silently through the
    API, and left the rows linked to it (deployments, rate limit policies, optimization runs) with no service.
    Deactivated, it leaves the live views and keeps them; to delete it, delete or move those rows first."""
    deleted, detached = _linked_rows(service)
    if not deleted and not detached:
        return None
    parts = []
    if deleted:
        parts.append(f"rows that would be deleted with it ({_listed(deleted)})")
    if detached:
        parts.append(f"rows that would be left without a service ({_listed(detached)})")
    return (
        f"{service.name} has {' and '.join(parts)}: deactivate it (is_active off) to keep them, or delete them "
        "(or move them to another service) first."
    )


def _listed(counts: Counter[str]) -> str:
    return ", ".join(f"{kind}: {count}" for kind, count in sorted(counts.items()))


@transaction.atomic
def service_delete(*, service: Service) -> None:
    """Delete a service that has nothing recorded against it; refuse (ValidationError) one that has. The row
    is locked first: a row recorded against it meanwhile (its insert takes a key-share lock on the service)
    waits for the delete and is refused, or is committed first and seen by the check, never deleted unseen."""
    Service.objects.select_for_update().filter(pk=service.pk).first()
    refusal = service_delete_refusal(service)
    if refusal is not None:
        raise ValidationError(refusal)
    service.delete()


def services_restrict_to_administrators(service_ids: Iterable[int]) -> list[Service]:
    """Of these services, those left restricted to no group (their groups deleted) are restricted to the
    Administrators group instead, so they do not fall open to every staff role; the ones changed."""
    from apps.accounts.roles import ADMINISTRATORS

    administrators = Group.objects.get_or_create(name=ADMINISTRATORS)[0]
    opened = list(Service.objects.filter(pk__in=list(service_ids), visible_to__isnull=True))
    for service in opened:
        service.visible_to.add(administrators)
    return opened
