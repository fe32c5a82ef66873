from urllib.parse import urlsplit, urlunsplit

from django.db import migrations

CREDENTIALS_NOTE = (
    "A user name and password were removed from the base URL on upgrade: every staff role could read them. Give "
    "the service its credentials another way."
)


def base_url_credentials_remove(apps, schema_editor) -> None:
    """The check against credentials in a base URL runs on save: rows stored before it still showed
    `https://user:password@host/` to every staff role, Viewers included. The user name and password go, with a
    note in the description; the rest of the URL is kept."""
    Service = apps.get_model("services", "Service")
    for service in Service.objects.filter(base_url__contains="@"):
        url = urlsplit(service.base_url)
        if "@" not in url.netloc:
            continue
        host = url.netloc.rpartition("@")[2]
        service.base_url = urlunsplit((url.scheme, host, url.path, url.query, url.fragment))
        service.description = f"{CREDENTIALS_NOTE}\n\n{service.description}".strip()
        service.save(update_fields=["base_url", "description"])


class Migration(migrations.Migration):
    dependencies = [("services", "0004_service_route_prefix_unique")]

    operations = [migrations.RunPython(base_url_credentials_remove, migrations.RunPython.noop)]
