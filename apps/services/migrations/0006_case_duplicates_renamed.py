from collections.abc import Callable

from django.db import migrations
from django.db.models.functions import Lower


def _database_lower(schema_editor) -> Callable[[str], str]:
    """The database's own lower() of a text, which 0007's constraints fold by: Python's differs (PostgreSQL
    folds "İstanbul" to "istanbul", Python to "i̇stanbul"), and a pair it missed failed 0007's constraint."""

    def fold(text: str) -> str:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT LOWER(%s)", [text])
            return cursor.fetchone()[0]

    return fold


def _free(wanted: str, max_length: int, taken: set[str], fold: Callable[[str], str]) -> str:
    """`wanted`, or `wanted-2`, `-3`...: the first whose folded form no other row holds, within max_length."""
    if fold(wanted) not in taken:
        return wanted
    for number in range(2, 100_000):
        suffix = f"-{number}"
        candidate = f"{wanted[: max_length - len(suffix)]}{suffix}"
        if fold(candidate) not in taken:
            return candidate
    raise RuntimeError(f"No free variant of {wanted!r}")  # 100,000 services in one case: not a registry


def _renamed(rows: list[tuple[int, str, str]], max_length: int, fold: Callable[[str], str]) -> dict[int, str]:
    """Of (pk, value, the database's fold of value) rows, oldest first, the values that change: the oldest of
    each folded group keeps its own, each later one the first free suffixed variant (free of every kept value
    and of those given before)."""
    kept: dict[str, int] = {}
    for pk, _value, folded in rows:
        kept.setdefault(folded, pk)
    taken = set(kept)
    changed: dict[int, str] = {}
    for pk, value, folded in rows:
        if kept[folded] == pk:
            continue
        changed[pk] = _free(value, max_length, taken, fold)
        taken.add(fold(changed[pk]))
    return changed


def case_duplicates_rename(apps, schema_editor) -> None:
    """Before the constraints that make names and slugs unique in any case (0007): slugs are lower-cased, and of
    the services whose names or slugs differ only in case the oldest keeps its own and each later one gets the
    first free `-2`, `-3`... suffix, with a note in its description. Case is what the database's lower() folds,
    as for the constraints: the rows are folded in the query, each suffixed candidate by the database too."""
    Service = apps.get_model("services", "Service")
    fold = _database_lower(schema_editor)
    services = list(
        Service.objects.annotate(
            folded_name=Lower("name"), lower_slug=Lower("slug"), folded_slug=Lower(Lower("slug"))
        ).order_by("created_at", "pk")
    )
    names = _renamed(
        [(s.pk, s.name, s.folded_name) for s in services], Service._meta.get_field("name").max_length, fold
    )
    slugs = _renamed(
        [(s.pk, s.lower_slug, s.folded_slug) for s in services], Service._meta.get_field("slug").max_length, fold
    )
    final = {
        s.pk: (names.get(s.pk, s.name), slugs.get(s.pk, s.lower_slug))
        for s in services
        if (names.get(s.pk, s.name), slugs.get(s.pk, s.lower_slug)) != (s.name, s.slug)
    }
    # Out of the way first: a row's new value may be one another row holds until its own turn.
    for pk in final:
        Service.objects.filter(pk=pk).update(name=f"~upgrade-{pk}", slug=f"~upgrade-{pk}")
    for service in services:
        if service.pk not in final:
            continue
        name, slug = final[service.pk]
        renamed = [f"{field} {old!r} -> {new!r}" for field, old, new in
                   (("name", service.name, name), ("slug", service.slug, slug)) if old != new]  # fmt: skip
        if service.name != name or service.lower_slug != slug:  # a slug's case alone goes without a note
            note = f"Renamed on upgrade (names and slugs are unique in any case): {'; '.join(renamed)}."
            service.description = f"{note}\n\n{service.description}".strip()
        service.name, service.slug = name, slug
        service.save(update_fields=["name", "slug", "description"])


class Migration(migrations.Migration):
    dependencies = [("services", "0005_base_url_credentials_removed")]

    operations = [migrations.RunPython(case_duplicates_rename, migrations.RunPython.noop)]
