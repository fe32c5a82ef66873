"""apps.core.link_local.is_refused_address and the URL check built on it: the cloud metadata service's
addresses are refused however they are written (every spelling the resolver turns into one), and loopback,
private and public addresses and ordinary names are not."""

import pytest
from django.core.exceptions import ValidationError

from apps.core.link_local import is_link_local_url, is_refused_address, refuse_link_local_url

REFUSED = [
    "169.254.169.254",
    "169.254.0.1",
    "2852039166",  # decimal
    "0xa9fea9fe",  # one hexadecimal number
    "0xa9.254.169.254",  # a hexadecimal part
    "0XA9.0xFE.0xa9.0xfe",
    "0251.0376.0251.0376",  # octal
    "0251.254.169.0376",
    "169.254.43518",  # three parts, the last filling two bytes
    "169.16689662",  # two parts
    "169.254.169.254.",  # trailing dot
    "169.254.169.254..",
    "\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14",  # fullwidth digits
    "169\u3002254\u3002169\u3002254",  # an ideographic full stop IDNA reads as a dot
    "fe80::1",
    "FE80::a9fe:a9fe",
    "febf:ffff::1",  # the end of fe80::/10
    "fe80::1%eth0",
    "fe80::1%25eth0",
    "[fe80::1]",
    "fd00:ec2::254",  # AWS's IPv6 metadata service, outside fe80::/10
    "fd00:0ec2:0000::0254",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:a9fe:a9fe",
    "0:0:0:0:0:ffff:169.254.169.254",
    "::169.254.169.254",  # IPv4-compatible
    "::a9fe:a9fe",
    "::ffff:0:a9fe:a9fe",  # IPv4-translated (SIIT)
    "64:ff9b::169.254.169.254",  # NAT64
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a9fe:a9fe",  # NAT64, local-use prefix
    "2002:a9fe:a9fe::",  # 6to4
    "2002:a9fe:1::1",
    "2001:0:a9fe:a9fe::1",  # Teredo: the server
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo: the client, stored inverted (~169.254.169.254)
    "100.100.100.200",  # Alibaba Cloud's metadata service
    "metadata.google.internal",
    "metadata.google.internal.",
    "METADATA.Google.Internal",
    "metadata",
    "metadata.",
    "instance-data.ec2.internal",
]

ALLOWED = [
    "127.0.0.1",
    "127.1",
    "0x7f.0.0.1",
    "10.0.0.5",
    "012.0.0.5",  # 10.0.0.5 in octal
    "192.168.1.20",
    "172.16.0.1",
    "100.64.0.1",  # carrier-grade NAT space, where some private networks live
    "8.8.8.8",
    "169.253.255.255",
    "169.255.0.1",
    "::1",
    "::",
    "fc00::1",
    "fd00:ec2::1",
    "fec0::1",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    "64:ff9b::8.8.8.8",
    "2002:0a00:0001::1",  # 6to4 of 10.0.0.1
    "localhost",
    "hooks.slack.com",
    "metadata.hospital.example",
    "my-metadata",
    "1.2.3.4.5",  # no address: five parts
    "08.1.1.1",  # no address: 8 is no octal digit
    "0x1g.0.0.1",
    "",
]


@pytest.mark.parametrize("address", REFUSED)
def test_a_metadata_address_is_refused_however_written(address):
    assert is_refused_address(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_other_addresses_and_names_are_not(address):
    assert not is_refused_address(address)


URL_SPELLINGS = [
    "http://2852039166/latest/meta-data/",
    "http://0xa9.254.169.254/",
    "http://0251.0376.0251.0376/",
    "http://169.254.43518/",
    "http://169.254.169.254./",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.google.internal./computeMetadata/v1/",
    "http://metadata/computeMetadata/v1/",
    "http://user:pw@169.254.169.254:80/",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::1]:8080/",
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",
    "http://[fe80::1%25eth0]/",
]


@pytest.mark.parametrize("url", URL_SPELLINGS)
def test_a_url_with_an_odd_spelling_is_refused_by_the_validator(url):
    assert is_link_local_url(url)
    with pytest.raises(ValidationError) as raised:
        refuse_link_local_url(url)
    assert raised.value.code == "link_local"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/hook", "http://127.1/", "http://10.0.0.5/", "http://[::1]:9000/", "http://localhost/",
     "https://pager.hospital.example/hook", "http://[::1", "not a url", ""],
)  # fmt: skip
def test_allowed_urls_pass_the_validator(url):
    assert not is_link_local_url(url)
    refuse_link_local_url(url)
