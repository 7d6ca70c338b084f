"""Standard Webhooks secrets and signatures, with the standard library only (no Django).

A secret is ``whsec_`` + base64 of 32 random bytes; the HMAC key is those bytes. A signature is
``v1,`` + base64(HMAC-SHA256(key, f"{webhook_id}.{timestamp}.{body}")).
"""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
SECRET_BYTES = 32


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with 'whsec_'")
    return base64.b64decode(secret[len(SECRET_PREFIX) :])


def signature(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for this message."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_valid(*, secret: str, webhook_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """Whether any ``v1`` signature of a (space-separated) header matches; constant time."""
    expected = signature(secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
