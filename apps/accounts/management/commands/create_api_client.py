from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.accounts.scopes import SCOPES
from apps.accounts.services import (
    MAX_EXPIRES_DAYS,
    RUNNER_ONLY_SCOPES,
    api_client_create,
    validate_application_name,
    validate_application_scopes,
)


class Command(BaseCommand):
    help = "Create a machine client and print its bearer token once, as the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        application_scopes = [scope for scope in SCOPES if scope not in RUNNER_ONLY_SCOPES]
        parser.add_argument("--scopes", required=True, help=f"Comma-separated, from: {', '.join(application_scopes)}")
        parser.add_argument(
            "--expires-days", type=int, default=None, help=f"Days until the token expires (1-{MAX_EXPIRES_DAYS})."
        )
        parser.add_argument("--description", default="")

    def handle(self, *args, name: str, scopes: str, expires_days: int | None, description: str, **options) -> None:
        if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRES_DAYS:
            raise CommandError(f"--expires-days must be between 1 and {MAX_EXPIRES_DAYS} days.")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        try:
            issued = api_client_create(
                name=validate_application_name(name),
                scopes=validate_application_scopes([s.strip() for s in scopes.split(",") if s.strip()]),
                expires_at=expires_at,
                description=description,
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            ) from exc
        client = issued.client
        self.stdout.write(f"Created API client {client.name!r} with scopes {', '.join(client.scopes)}.")
        self.stdout.write(f"Expires: {client.expires_at.isoformat() if client.expires_at else 'never'}.")
        self.stdout.write("The token is shown once and only its hash is stored:")
        self.stdout.write(issued.token)
