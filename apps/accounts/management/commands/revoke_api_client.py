from django.core.management.base import BaseCommand, CommandParser

from apps.accounts.management.lookup import client_named
from apps.accounts.services import api_client_revoke


class Command(BaseCommand):
    help = "Revoke a machine client's token; its requests get 401 from then on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args, name: str, **options) -> None:
        client = client_named(name)
        api_client_revoke(client=client)
        self.stdout.write(f"Revoked API client {client.name!r}.")
