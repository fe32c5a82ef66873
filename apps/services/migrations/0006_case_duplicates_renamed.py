from django.db import migrations


def _free(wanted: str, max_length: int, taken: set[str]) -> str:
    """`wanted`, or `wanted-2`, `-3`...: the first whose folded form no other row holds, within max_length."""
    if wanted.lower() not in taken:
        return wanted
    for number in range(2, 100_000):
        suffix = f"-{number}"
        candidate = f"{wanted[: max_length - len(suffix)]}{suffix}"
        if candidate.lower() not in taken:
            return candidate
    raise RuntimeError(f"No free variant of {wanted!r}")  # 100,000 services in one case: not a registry


def _renamed(rows: list[tuple[int, str]], max_length: int) -> dict[int, str]:
    """Of (pk, value) rows, oldest first, the values that change: the oldest of each case-folded group keeps its
    own, each later one the first free suffixed variant (free of every kept value and of those given before)."""
    kept: dict[str, int] = {}
    for pk, value in rows:
        kept.setdefault(value.lower(), pk)
    taken = set(kept)
    changed: dict[int, str] = {}
    for pk, value in rows:
        if kept[value.lower()] == pk:
            continue
        changed[pk] = _free(value, max_length, taken)
        taken.add(changed[pk].lower())
    return changed


def case_duplicates_rename(apps, schema_editor) -> None:
    """Before the constraints that make names and slugs unique in any case (0007): slugs are lower-cased, and of
    the services whose names or slugs differ only in case the oldest keeps its own and each later one gets the
    first free `-2`, `-3`... suffix, with a note in its description. Names fold by Python's lower() here, the
    database's lower() for the constraint: for the letters of any name a registry holds, the same."""
    Service = apps.get_model("services", "Service")
    services = list(Service.objects.order_by("created_at", "pk"))
    names = _renamed([(s.pk, s.name) for s in services], Service._meta.get_field("name").max_length)
    slugs = _renamed([(s.pk, s.slug.lower()) for s in services], Service._meta.get_field("slug").max_length)
    final = {
        s.pk: (names.get(s.pk, s.name), slugs.get(s.pk, s.slug.lower()))
        for s in services
        if (names.get(s.pk, s.name), slugs.get(s.pk, s.slug.lower())) != (s.name, s.slug)
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
        if service.name != name or service.slug.lower() != slug:  # a slug's case alone goes without a note
            note = f"Renamed on upgrade (names and slugs are unique in any case): {'; '.join(renamed)}."
            service.description = f"{note}\n\n{service.description}".strip()
        service.name, service.slug = name, slug
        service.save(update_fields=["name", "slug", "description"])


class Migration(migrations.Migration):
    dependencies = [("services", "0005_base_url_credentials_removed")]

    operations = [migrations.RunPython(case_duplicates_rename, migrations.RunPython.noop)]
