"""apps.core.link_local: the validator for URLs the product sends its own requests to (an alert's webhook, a
service's base URL) refuses link-local hosts and nothing else."""

import pytest
from django.core.exceptions import ValidationError

from apps.core.link_local import refuse_link_local_url


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "https://169.254.0.1:8443/hook", "http://[fe80::1]/",
                                 "http://[fe80::1%25eth0]/", "http://[::ffff:169.254.169.254]/",
                                 "http://169.254.169.254./"])  # fmt: skip
def test_a_link_local_host_is_a_validation_error(url):
    with pytest.raises(ValidationError) as raised:
        refuse_link_local_url(url)
    assert raised.value.code == "link_local"


ALLOWED = ["", "http://127.0.0.1:8000/hook", "http://localhost/", "https://10.0.0.5/", "http://[::1]/",
           "https://hooks.slack.com/services/x", "http://[::1", "not a url"]  # fmt: skip


@pytest.mark.parametrize("url", ALLOWED)
def test_anything_else_passes(url):
    refuse_link_local_url(url)
