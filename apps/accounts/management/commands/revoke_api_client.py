from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.management.lookup import client_named
from apps.accounts.services import api_client_revoke


class Command(BaseCommand):
    help = "Revoke a machine client's token; its requests get 401 from then on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args, name: str, **options) -> None:
        client = client_named(name)
        revocation = api_client_revoke(client=client)
        if revocation.revoked:
            self.stdout.write(f"Revoked API client {client.name!r}.")
        elif revocation.revoked_at is None:
            raise CommandError(f"API client {client.name!r} was deleted meanwhile.")
        else:  # revoked before (this command, admin, a benchmark run's clean-up): that time is kept
            self.stdout.write(
                f"API client {client.name!r} was already revoked, at {revocation.revoked_at.isoformat()}."
            )
