#!/usr/bin/env python
"""Django's command-line utility for the control plane."""

import os
import sys


def _settings_failure(error: Exception, module: str) -> bool:
    """Whether `error` is the settings' own: a setting refused (ImproperlyConfigured), or the settings module (as
    --settings or DJANGO_SETTINGS_MODULE names it) not there. An import missing inside it is a bug, not a setting."""
    from django.core.exceptions import ImproperlyConfigured

    if isinstance(error, ImproperlyConfigured):
        return True
    missing = getattr(error, "name", None) if isinstance(error, ModuleNotFoundError) else None
    return bool(missing) and (module == missing or module.startswith(f"{missing}."))


def configure_or_exit(argv: list[str]) -> None:
    """Load the settings, and the apps, before the command is looked up: a bad setting (DATABASE_URL=nonsense, a
    value out of its range, a check an app's ready() makes) stops every command with one line naming it and exit
    status 1. Django's own handling printed a traceback, or for the project's commands "Unknown command", the
    error only in a note below. --settings and --pythonpath are read as Django reads them, first."""
    import django
    from django.conf import settings
    from django.core.management.base import CommandError, CommandParser, handle_default_options

    parser = CommandParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    parser.add_argument("args", nargs="*")
    try:
        options, _ = parser.parse_known_args(argv[2:])
        handle_default_options(options)
    except CommandError:  # a malformed option: the command's own parser says so
        pass
    # runserver's reloader sets the apps up itself: an error in an app's module is shown and the reloader waits
    # for the fix, rather than ending.
    reloading = argv[1:2] == ["runserver"] and "--noreload" not in argv
    try:
        settings.INSTALLED_APPS  # noqa: B018 - imports the settings module, where each value is checked
        if not reloading:
            django.setup()
    except Exception as error:
        module = os.environ["DJANGO_SETTINGS_MODULE"]
        if not _settings_failure(error, module):
            raise
        message = str(error)
        if isinstance(error, ModuleNotFoundError):
            message = f"the settings module {module} was not found ({error})"
        print("Configuration error:", " ".join(message.split()), file=sys.stderr)
        sys.exit(1)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    from django.core.management import execute_from_command_line

    configure_or_exit(sys.argv)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
