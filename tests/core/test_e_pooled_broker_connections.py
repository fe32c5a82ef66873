"""This process's pooled broker connections stay usable after what other tests do in it. A purge (unlike a send)
does not retry, so a dead pooled connection failed the next purge with ConnectionResetError: in the CI's order
that was the setup of tests/core/test_e_sign_in_retention.py's worker test (its `broker_emptied`), an error its
rerun then passed.

Two ways one died: a fork (tests/clinical/test_loader.py's `load_synthetic --workers 2` forks this process), whose
child runs kombu's after-fork hook and closes every pooled connection it inherited, on the socket it shares with
the parent; and a test deleting its environment's RabbitMQ vhost (`vhost_deleted`), which closes every connection
to it. tests/conftest.py drops the pools before each fork, tests.helpers.broker_vhost_deleted when the vhost is
back."""

import multiprocessing

from controlplane.celery import app as celery_app
from tests.helpers import broker_vhost_deleted


def _nothing() -> None:
    """A forked child's work: none. Its after-fork hooks run all the same."""


def test_the_broker_is_used_at_once_after_a_forked_child_ended():
    celery_app.control.purge()  # a connection in the pool, as any earlier test's send or purge leaves one
    child = multiprocessing.get_context("fork").Process(target=_nothing)
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert celery_app.control.purge() == 0  # raised ConnectionResetError: the child had closed the connection


def test_the_broker_is_used_at_once_after_the_vhost_came_back():
    celery_app.control.purge()
    with broker_vhost_deleted():
        pass
    assert celery_app.control.purge() == 0  # raised ConnectionResetError: the pooled connection was to the old vhost
