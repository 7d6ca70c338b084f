"""API key generation and verification, with no database access.

A key reads ``upk_<lookup>_<secret>`` (a customer's API key) or ``upsk_<lookup>_<secret>`` (a
service key of the job platform; every function takes the ``prefix`` of the kind it handles):

- ``upk_``/``upsk_`` is a fixed, recognisable prefix so secret scanners can find leaked keys, and
  so that a key of one kind can never be parsed as a key of the other;
- ``<lookup>`` is 12 random lowercase letters/digits, stored in clear and indexed, used to find
  the row and shown in lists as the key's public prefix (``upk_<lookup>``);
- ``<secret>`` is 43 URL-safe base64 characters (256 random bits).

Only an HMAC-SHA256 digest of the whole key is stored, keyed with a server-side secret, and it is
compared in constant time. A fast keyed hash is the right tool here: the secret has far too much
entropy to be guessed, so a slow password hasher would only cost every request 100 ms.
"""

import base64
import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

KEY_PREFIX = "upk_"
SERVICE_KEY_PREFIX = "upsk_"
LOOKUP_LENGTH = 12
SECRET_BYTES = 32
_LOOKUP_ALPHABET = string.ascii_lowercase + string.digits
_KEY_RES = {
    prefix: re.compile(
        rf"^{prefix}(?P<lookup>[a-z0-9]{{{LOOKUP_LENGTH}}})_(?P<secret>[A-Za-z0-9_-]{{43}})$"
    )
    for prefix in (KEY_PREFIX, SERVICE_KEY_PREFIX)
}


@dataclass(frozen=True)
class GeneratedKey:
    """A freshly generated key: ``plaintext`` is shown once, the rest is stored."""

    plaintext: str
    lookup: str
    key_prefix: str = KEY_PREFIX

    @property
    def prefix(self) -> str:
        return public_prefix(self.lookup, prefix=self.key_prefix)


def public_prefix(lookup: str, *, prefix: str = KEY_PREFIX) -> str:
    """The part of a key that may be shown in lists and logs."""
    return f"{prefix}{lookup}"


def generate_key(*, prefix: str = KEY_PREFIX) -> GeneratedKey:
    """Return a new random key of the kind ``prefix`` names (``KEY_PREFIX`` or ``SERVICE_KEY_PREFIX``)."""
    if prefix not in _KEY_RES:
        raise ValueError(f"unknown key prefix {prefix!r}")
    lookup = "".join(secrets.choice(_LOOKUP_ALPHABET) for _ in range(LOOKUP_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return GeneratedKey(plaintext=f"{prefix}{lookup}_{secret}", lookup=lookup, key_prefix=prefix)


def parse_lookup(plaintext: str, *, prefix: str = KEY_PREFIX) -> str | None:
    """Return the lookup id of a well-formed key of the kind ``prefix`` names, or None when the
    text cannot be such a key (a key of the other kind included)."""
    match = _KEY_RES[prefix].match(plaintext)
    return match.group("lookup") if match else None


def key_digest(plaintext: str, *, signing_key: str) -> str:
    """HMAC-SHA256 of the key, hex encoded; ``signing_key`` is the server-side secret."""
    return hmac.new(signing_key.encode(), plaintext.encode(), hashlib.sha256).hexdigest()


def key_matches(plaintext: str, digest: str, *, signing_keys: list[str]) -> bool:
    """True if ``plaintext`` hashes to ``digest`` under any of ``signing_keys`` (constant time)."""
    matched = False
    for signing_key in signing_keys:
        matched |= hmac.compare_digest(key_digest(plaintext, signing_key=signing_key), digest)
    return matched


def key_from_seed(seed: bytes) -> GeneratedKey:
    """A key derived deterministically from ``seed`` (used only for the demo data).

    Derived keys are as strong as the seed: ``seed_demo`` derives its demo key from SECRET_KEY, so
    it can print the same key on every run without ever storing it.
    """
    material = hashlib.sha256(b"usage-portal-demo-key:" + seed).digest()
    lookup = "".join(_LOOKUP_ALPHABET[byte % len(_LOOKUP_ALPHABET)] for byte in material[:LOOKUP_LENGTH])
    secret = base64.urlsafe_b64encode(hashlib.sha256(material).digest()).decode().rstrip("=")
    return GeneratedKey(plaintext=f"{KEY_PREFIX}{lookup}_{secret}", lookup=lookup)
