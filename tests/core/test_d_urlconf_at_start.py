"""The URLconf is loaded when a server builds its handler (RequestIdMiddleware), not by its first request: a fresh
server's first /healthz waited 293-511 ms for every view, admin and API module to import."""

import pytest

from tests.helpers import embedded_env, run_python


@pytest.mark.parametrize("handler", ["django.core.handlers.wsgi.WSGIHandler", "django.core.handlers.asgi.ASGIHandler"])
def test_building_the_handler_loads_the_urlconf(tmp_path, handler):
    module, name = handler.rsplit(".", 1)
    code = (
        "import sys, django; django.setup()\n"
        "assert 'controlplane.urls' not in sys.modules, 'loaded before the handler'\n"
        f"from {module} import {name}; {name}()\n"
        "from django.urls import get_resolver\n"
        "print('controlplane.urls' in sys.modules, 'url_patterns' in vars(get_resolver()))\n"
    )
    result = run_python(code, embedded_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"], result.stdout
