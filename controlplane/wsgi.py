"""WSGI entry point: the api process (gunicorn) serves the DRF data plane and the admin."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

django_application = get_wsgi_application()

from apps.core.chunked import ChunkedBodyLength  # noqa: E402 - needs the settings configured above

application = ChunkedBodyLength(django_application)
