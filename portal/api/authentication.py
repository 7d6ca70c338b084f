"""REST authentication with API keys sent as ``Authorization: Bearer <key>``."""

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from accounts.models import ApiKey, Organisation
from accounts.services import api_key_touch, api_key_verify

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


class BearerKeyAuthentication(BaseAuthentication):
    """Authenticate ``Authorization: Bearer <key>`` against the stored API keys.

    - no ``Authorization`` header: returns None (the view's permission then answers 401);
    - any other scheme, a missing or extra token, an unknown or revoked key: 401;
    - a valid key of an inactive organisation: 403;
    - otherwise ``(ApiKeyUser, ApiKey)``, so ``request.auth`` is the key (its organisation loaded),
      and the key's last-used time is refreshed at most once a minute.

    The key text is never logged nor put in an error message.
    """

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != SCHEME.lower().encode():
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'Authorization: Bearer <API key>'."
            )
        try:
            plaintext = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        api_key = api_key_verify(plaintext)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if not api_key.organisation.is_active:
            raise exceptions.PermissionDenied("This API key's organisation is inactive.")
        api_key_touch(api_key=api_key)
        return ApiKeyUser(api_key=api_key), api_key

    def authenticate_header(self, request) -> str:
        return SCHEME


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
