"""REST authentication with keys sent as ``Authorization: Bearer <key>``: customers' API keys on
the customer endpoints, the job platform's service keys on the ingestion endpoints. A valid key
of the wrong kind is refused with 403 (it authenticates, but not for this endpoint)."""

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from accounts.models import ApiKey, Organisation, ServiceKey
from accounts.services import (
    api_key_touch,
    api_key_verify,
    service_key_scope,
    service_key_touch,
    service_key_verify,
)

SCHEME = "Bearer"


@dataclass(frozen=True)
class ApiKeyUser:
    """``request.user`` of a request authenticated by an API key: the key's organisation acting."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def organisation(self) -> Organisation:
        return self.api_key.organisation

    def __str__(self) -> str:
        return f"API key {self.api_key.prefix} of {self.api_key.organisation.org_id}"


@dataclass(frozen=True)
class ServiceKeyUser:
    """``request.user`` of a request authenticated by a service key: the job platform acting.

    ``scope``: the primary keys of the organisations it may write, None for every organisation.
    """

    service_key: ServiceKey
    scope: frozenset[int] | None

    is_authenticated = True
    is_anonymous = False

    def __str__(self) -> str:
        return f"service key {self.service_key.prefix}"


SERVICE_KEY_REFUSED = "A service key cannot be used on this endpoint: use an API key of your organisation."
API_KEY_REFUSED = "An organisation's API key cannot be used on this endpoint: use a service key."


def _bearer_token(request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None without the header; 401 when the
    header is malformed or the token is not ASCII."""
    header = get_authorization_header(request)
    if not header:
        return None
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != SCHEME.lower().encode():
        raise exceptions.AuthenticationFailed(
            "Malformed Authorization header: expected 'Authorization: Bearer <key>'."
        )
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed("Invalid API key.") from None


class BearerKeyAuthentication(BaseAuthentication):
    """Authenticate ``Authorization: Bearer <key>`` against the stored API keys.

    - no ``Authorization`` header: returns None (the view's permission then answers 401);
    - any other scheme, a missing or extra token, an unknown or revoked key: 401;
    - a valid key of an inactive organisation, or a valid service key: 403 (never an API call);
    - otherwise ``(ApiKeyUser, ApiKey)``, so ``request.auth`` is the key (its organisation loaded),
      and the key's last-used time is refreshed at most once a minute.

    The key text is never logged nor put in an error message.
    """

    def authenticate(self, request):
        plaintext = _bearer_token(request)
        if plaintext is None:
            return None
        api_key = api_key_verify(plaintext)
        if api_key is None:
            if service_key_verify(plaintext) is not None:
                raise exceptions.PermissionDenied(SERVICE_KEY_REFUSED)
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if not api_key.organisation.is_active:
            raise exceptions.PermissionDenied("This API key's organisation is inactive.")
        api_key_touch(api_key=api_key)
        return ApiKeyUser(api_key=api_key), api_key

    def authenticate_header(self, request) -> str:
        return SCHEME


class ServiceKeyAuthentication(BaseAuthentication):
    """Authenticate ``Authorization: Bearer <service key>`` against the stored service keys.

    - no ``Authorization`` header: returns None (the view's permission then answers 401);
    - any other scheme, a missing or extra token, an unknown or revoked key: 401;
    - a valid API key of an organisation: 403;
    - otherwise ``(ServiceKeyUser, ServiceKey)`` with the key's scope loaded, and the key's
      last-used time refreshed at most once a minute.

    The key text is never logged nor put in an error message.
    """

    def authenticate(self, request):
        plaintext = _bearer_token(request)
        if plaintext is None:
            return None
        service_key = service_key_verify(plaintext)
        if service_key is None:
            if api_key_verify(plaintext) is not None:
                raise exceptions.PermissionDenied(API_KEY_REFUSED)
            raise exceptions.AuthenticationFailed("Invalid service key.")
        service_key_touch(service_key=service_key)
        scope = service_key_scope(service_key=service_key)
        return ServiceKeyUser(service_key=service_key, scope=scope), service_key

    def authenticate_header(self, request) -> str:
        return SCHEME


class HasServiceKey(BasePermission):
    """Allow only requests authenticated by a service key (else 401 through the Bearer challenge)."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ServiceKey)


class HasApiKey(BasePermission):
    """Allow only requests authenticated by an API key (else 401 through the Bearer challenge)."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ApiKey)


class BearerKeyScheme(OpenApiAuthenticationExtension):
    """Describes ``BearerKeyAuthentication`` in the OpenAPI schema as HTTP bearer auth."""

    target_class = "portal.api.authentication.BearerKeyAuthentication"
    name = "ApiKeyBearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key of your organisation, sent as `Authorization: Bearer <key>`. "
                "Keys look like `upk_<12 characters>_<43 characters>`."
            ),
        }


class ServiceKeyScheme(OpenApiAuthenticationExtension):
    """Describes ``ServiceKeyAuthentication`` in the OpenAPI schema as HTTP bearer auth."""

    target_class = "portal.api.authentication.ServiceKeyAuthentication"
    name = "ServiceKeyBearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A service key of the job platform, sent as `Authorization: Bearer <key>`. "
                "Service keys look like `upsk_<12 characters>_<43 characters>`; staff create them "
                "with `manage.py createservicekey` or in the admin."
            ),
        }
