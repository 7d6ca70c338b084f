"""Signatures interoperate with the ``standardwebhooks`` library; the SSRF guard refuses what
could reach the portal's own network."""

import base64
import datetime as dt
import socket

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from webhooks import signing
from webhooks.ssrf import UnsafeUrl, address_is_public, url_vet


def test_a_secret_is_whsec_and_32_random_bytes():
    secret = signing.secret_generate()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret != signing.secret_generate()


def test_our_signature_is_the_libraries_and_it_verifies():
    secret = signing.secret_generate()
    body = b'{"type":"webhook.test","timestamp":"2025-01-01T00:00:00Z","data":{}}'
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    header = signing.signature(secret=secret, webhook_id="msg_1", timestamp=int(now.timestamp()), body=body)
    assert header == Webhook(secret).sign("msg_1", now, body.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": header,
    }
    assert Webhook(secret).verify(body, headers)["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.secret_generate()).verify(body, headers)
    assert signing.signature_valid(
        secret=secret, webhook_id="msg_1", timestamp=int(now.timestamp()), body=body, header=f"v1,x {header}"
    )


def _resolving_to(monkeypatch, address):
    def fake(host, port, *args, **kwargs):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://localhost/hook",
        "https://metadata.google.internal/computeMetadata/v1/",
        "ftp://example.com/hook",
        "http://example.com/hook",
        "https://user:pw@example.com/hook",
        "not a url",
    ],
)
def test_the_guard_refuses(url):
    with pytest.raises(UnsafeUrl):
        url_vet(url, allow_private=False)


def test_a_name_that_resolves_to_a_private_address_is_refused(monkeypatch):
    _resolving_to(monkeypatch, "10.0.0.7")
    with pytest.raises(UnsafeUrl, match="10.0.0.7"):
        url_vet("https://hooks.customer.example/x", allow_private=False)


def test_a_public_address_is_accepted_and_pinned(monkeypatch):
    _resolving_to(monkeypatch, "93.184.216.34")
    vetted = url_vet("https://hooks.customer.example:8443/x", allow_private=False)
    assert (vetted.hostname, vetted.address) == ("hooks.customer.example", "93.184.216.34")


def test_allowing_private_urls_lifts_both_rules():
    assert url_vet("http://127.0.0.1:9/x", allow_private=True).address is None
    with pytest.raises(UnsafeUrl):
        url_vet("ftp://127.0.0.1/x", allow_private=True)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("100.64.0.1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:169.254.169.254", False),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::", False),  # 6to4 of 169.254.169.254
        ("2002:808:808::", True),  # 6to4 of 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo, client 127.0.0.1
        ("168.63.129.16", False),  # Azure's wire server
    ],
)
def test_address_classes(address, public):
    assert address_is_public(address) is public
