from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from apps.accounts.management.lookup import client_named
from apps.accounts.models import ApiClient
from apps.accounts.services import MAX_EXPIRES_DAYS, RUNNER_ONLY_SCOPES, api_client_rotate


class Command(BaseCommand):
    help = (
        "Issue a new bearer token for a machine client and print it once, as the last line; "
        "the old token stops working at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--expires-days",
            type=int,
            default=None,
            help=f"Days until the new token expires (1-{MAX_EXPIRES_DAYS}); default: the client's expiry is kept.",
        )

    def handle(self, *args, name: str, expires_days: int | None, **options) -> None:
        if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRES_DAYS:
            raise CommandError(f"--expires-days must be between 1 and {MAX_EXPIRES_DAYS} days.")
        found = client_named(name)
        name = found.name
        # Checked on the row locked for the rotation: a revoke committed since the lookup is seen, and no token
        # is printed before the rotation is committed.
        with transaction.atomic():
            client = ApiClient.objects.select_for_update().filter(pk=found.pk).first()
            if client is None:
                raise CommandError(f"API client {name!r} was deleted meanwhile.")
            # A revoked client's new token would be refused anyway: printing one would only put a secret on screen.
            if client.is_revoked:
                raise CommandError(f"API client {name!r} is revoked; create a new client instead.")
            if RUNNER_ONLY_SCOPES.intersection(client.scopes if isinstance(client.scopes, list) else []):
                raise CommandError(
                    f"API client {name!r} is a benchmark run's own token (its scopes lift every rate limit); "
                    "it ends with its run and is never handed to a person."
                )
            if client.is_expired and expires_days is None:
                raise CommandError(
                    f"API client {name!r} expired on {client.expires_at.isoformat()}; "
                    "pass --expires-days for the new one."
                )
            expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
            issued = api_client_rotate(client=client, expires_at=expires_at)
        expiry = issued.client.expires_at
        self.stdout.write(f"Rotated API client {name!r}; its previous token no longer works.")
        self.stdout.write(f"Expires: {expiry.isoformat() if expiry else 'never'}.")
        self.stdout.write("The token is shown once and only its hash is stored:")
        self.stdout.write(issued.token)
