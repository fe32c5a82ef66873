"""The brief's orchestrator command line, run by the product's `optimize` command:

    python performance/performance_orchestrator.py --optimize all --response-time 1.5 --cache-hit-rate 0.85

is `python manage.py optimize all --response-time 1.5 --cache-hit-rate 0.85` (other options pass through:
--apply, --inline, --service, --report, ...), with the same output, report and exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], add_help=False, epilog="Every other option is `manage.py optimize`'s:"
    )
    parser.add_argument("--optimize", required=True, choices=["all", "database", "caching", "model", "scaling"])
    # --help shows the options that pass through too (--response-time, --apply, ...), not --optimize alone.
    wants_help = any(arg in ("-h", "--help") for arg in argv)
    if wants_help:
        parser.print_help()
        print()
        known, passed_on = argparse.Namespace(optimize="all"), ["--help"]
    else:
        known, passed_on = parser.parse_known_args(argv)
    # Run as a file (python performance/performance_orchestrator.py), the repository is not on the path yet.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from apps.core.standalone import ensure_django

    ensure_django()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", "optimize", known.optimize, *passed_on])


if __name__ == "__main__":
    main()
