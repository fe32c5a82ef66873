from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_revoke


class Command(BaseCommand):
    help = "Revoke a machine client's token; its requests get 401 from then on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args, name: str, **options) -> None:
        client = ApiClient.objects.filter(name=name).first()
        if client is None:
            raise CommandError(f"No API client named {name!r}.")
        api_client_revoke(client=client)
        self.stdout.write(f"Revoked API client {name!r}.")
