"""The guard that keeps webhook URLs from reaching the portal's own network (SSRF).

A URL must be ``https://`` and its host must resolve only to public addresses: loopback,
private, link-local (169.254.169.254, the cloud metadata service, included), multicast,
reserved, unspecified and shared addresses are refused, as are IPv4-mapped IPv6 forms of them.
The check runs when an endpoint is saved and again right before each send, and the send then
connects to the address that was vetted (so a DNS answer cannot change in between).
``WEBHOOK_ALLOW_PRIVATE_URLS`` lifts both rules (and allows ``http://``) for development and tests.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from portal.errors import DomainError

METADATA_HOSTS = {"metadata", "metadata.google.internal", "metadata.goog", "instance-data"}


class UnsafeUrl(DomainError):
    """A webhook URL the portal refuses to call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


@dataclass(frozen=True)
class VettedUrl:
    """A URL that passed the guard; ``address`` is the IP to connect to (None: resolve as usual,
    only when private URLs are allowed)."""

    url: str
    hostname: str
    address: str | None


# Addresses that are global on paper but answer cloud instances only: Azure's wire server
# (metadata and agent traffic) at 168.63.129.16.
_INTERNAL_GLOBALS = frozenset({ipaddress.ip_address("168.63.129.16")})


def address_is_public(address: str) -> bool:
    """Whether an IP address is public: v4 or v6, one with an IPv4 address inside (mapped, 6to4,
    Teredo) judged by that IPv4 too."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if any(inner is not None and not address_is_public(str(inner)) for inner in embedded):
            return False
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    if ip in _INTERNAL_GLOBALS:
        return False
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _resolve(hostname: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeUrl(f"The host {hostname!r} could not be resolved.") from error
    return list(dict.fromkeys(info[4][0] for info in infos))


def url_vet(url: str, *, allow_private: bool) -> VettedUrl:
    """Check ``url`` against the rules above; raise ``UnsafeUrl`` saying why it is refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl("This is not a valid URL.") from error
    hostname = (parts.hostname or "").rstrip(".").lower()
    allowed_schemes = {"https", "http"} if allow_private else {"https"}
    if parts.scheme not in allowed_schemes:
        raise UnsafeUrl("A webhook URL must start with https://.")
    if not hostname:
        raise UnsafeUrl("A webhook URL needs a host name.")
    if parts.username or parts.password:
        raise UnsafeUrl("A webhook URL may not carry a user name or password.")
    if allow_private:
        return VettedUrl(url=url, hostname=hostname, address=None)
    if hostname in METADATA_HOSTS:
        raise UnsafeUrl("A webhook URL may not point at a metadata service.")
    addresses = _resolve(hostname, port or 443)
    refused = [address for address in addresses if not address_is_public(address)]
    if not addresses or refused:
        raise UnsafeUrl(
            f"{hostname} resolves to an address that is not public ({', '.join(refused) or 'none'})."
        )
    return VettedUrl(url=url, hostname=hostname, address=addresses[0])
