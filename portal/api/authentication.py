"""REST authentication with keys sent as ``Authorization: Bearer <key>``: customers' API keys on
the customer endpoints, the job platform's service keys on the ingestion endpoints. A valid key
of the wrong kind is refused with 403 (it authenticates, but not for this endpoint)."""

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.db import connection
from django.db.models.expressions import Col
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from accounts import keys
from accounts.models import ApiKey, Organisation, ServiceKey
from accounts.services import api_key_touch, api_key_verify, service_key_touch, service_key_verify
from portal.db import prepared_cursor

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


INVALID_API_KEY = "Invalid API key."
INVALID_SERVICE_KEY = "Invalid service key."
SERVICE_KEY_REFUSED = "A service key cannot be used on this endpoint: use an API key of your organisation."
API_KEY_REFUSED = "An organisation's API key cannot be used on this endpoint: use a service key."


def _bearer_token(request, *, invalid: str) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None without the header; 401 when the
    header is malformed, or ``invalid`` when the token is not ASCII (so no key)."""
    try:
        header = get_authorization_header(request)
    except UnicodeEncodeError:  # not WSGI's latin-1 text (a test client or another server)
        raise exceptions.AuthenticationFailed(invalid) from None
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
        raise exceptions.AuthenticationFailed(invalid) from None


_KEY_FIELDS = ("id", "organisation_id", "digest", "last_used_at", "revoked_at")


@dataclass(frozen=True)
class LookupExtra:
    """A value of the key's organisation read in the key's lookup statement, so it costs no round
    trip of its own and is read in the same snapshot as the organisation's row.

    ``sql(organisation_pk)`` returns an SQL expression over ``organisation_pk``, the quoted column
    of the organisation's primary key (built once per process). The value is found, as the
    database returns it, in ``api_key.lookup_extras[name]``.
    """

    name: str
    sql: Callable[[str], str]


@dataclass(frozen=True)
class _LookupQuery:
    sql: str
    key_fields: list[str]
    organisation_fields: list[str]
    converters: list[list]  # per selected column: (converter, expression) pairs, as the ORM applies them
    extras: list[str]


def _column_converters(selected: list[tuple[str, object]]) -> list[list]:
    """For each (table alias, model field) selected, the converters the ORM would apply to its
    value (SQLite returns datetimes as text, booleans as integers), as (converter, expression)."""
    converters = []
    for alias, field in selected:
        expression = Col(alias, field)
        found = connection.ops.get_db_converters(expression) + field.get_db_converters(connection)
        converters.append([(converter, expression) for converter in found])
    return converters


def _converted(values, converters: list[list]) -> list:
    """``values`` (the first ``len(converters)`` of a row) as the ORM would load them."""
    values = list(values[: len(converters)])
    for index, found in enumerate(converters):
        for converter, expression in found:
            values[index] = converter(values[index], expression, connection)
    return values


def _matching_digest(plaintext: str, digest: str) -> str | None:
    """The key's digest under the current ``SECRET_KEY`` when ``plaintext`` matches ``digest``
    under it or under a ``SECRET_KEY_FALLBACKS`` entry; None when it matches neither. One HMAC when
    the digest is under the current secret (the usual case). A caller whose stored digest differs
    from the one returned re-hashes the key (unless it is revoked)."""
    current = keys.key_digest(plaintext, signing_key=settings.SECRET_KEY)
    if hmac.compare_digest(current, digest):
        return current
    fallbacks = list(getattr(settings, "SECRET_KEY_FALLBACKS", []))
    if fallbacks and keys.key_matches(plaintext, digest, signing_keys=fallbacks):
        return current
    return None


@cache
def _lookup_query(extras: tuple[LookupExtra, ...] = ()) -> _LookupQuery:
    """The key lookup as one fixed SQL text, built once per process (and set of ``extras``).

    The ORM would compile a ``select_related`` join of both models' every column at each request
    (the largest share of the API's per-request CPU); this text is the same at every call. Values
    go through the same converters the ORM would apply (SQLite returns datetimes as text,
    booleans as integers); the extras' values follow, as the database returns them.
    """
    quote = connection.ops.quote_name
    key_fields = [ApiKey._meta.get_field(name) for name in _KEY_FIELDS]
    organisation_fields = list(Organisation._meta.concrete_fields)
    selected = [("k", field) for field in key_fields] + [("o", field) for field in organisation_fields]
    columns = [f"{alias}.{quote(field.column)}" for alias, field in selected]
    converters = _column_converters(selected)
    key_table, organisation_table = quote(ApiKey._meta.db_table), quote(Organisation._meta.db_table)
    organisation_column = quote(ApiKey._meta.get_field("organisation").column)
    lookup_column = quote(ApiKey._meta.get_field("lookup").column)
    columns += [extra.sql(f"o.{quote(Organisation._meta.pk.column)}") for extra in extras]
    # Only quoted identifiers from the models' metadata are interpolated; the lookup is a parameter.
    sql = (
        f"SELECT {', '.join(columns)} FROM {key_table} k "  # noqa: S608
        f"JOIN {organisation_table} o ON o.{quote(Organisation._meta.pk.column)} = k.{organisation_column} "
        f"WHERE k.{lookup_column} = %s"
    )
    return _LookupQuery(
        sql=sql,
        key_fields=[field.attname for field in key_fields],
        organisation_fields=[field.attname for field in organisation_fields],
        converters=converters,
        extras=[extra.name for extra in extras],
    )


def api_key_lookup(plaintext: str, *, extras: tuple[LookupExtra, ...] = ()) -> ApiKey | None:
    """The unrevoked key matching ``plaintext``, its organisation loaded, or None.

    What ``accounts.services.api_key_verify`` decides (one indexed lookup, one HMAC per signing
    key, a fallback match re-hashed), with one fixed SQL statement instead of an ORM query: the
    key comes back with the columns authentication needs (the others are deferred and load on
    access), its organisation whole, and the ``extras`` in ``lookup_extras``. Nothing is cached
    between requests: a revocation or a deactivation holds from the next request.
    """
    lookup = keys.parse_lookup(plaintext)
    if lookup is None:
        return None
    query = _lookup_query(extras)
    with prepared_cursor() as cursor:
        cursor.execute(query.sql, [lookup])
        row = cursor.fetchone()
    if row is None:
        return None
    values = _converted(row, query.converters)
    split = len(query.key_fields)
    api_key = ApiKey.from_db(connection.alias, query.key_fields, values[:split])
    current = _matching_digest(plaintext, api_key.digest)
    if current is None or api_key.revoked_at:
        return None
    if current != api_key.digest:
        ApiKey.objects.filter(pk=api_key.pk).update(digest=current)
        api_key.digest = current
    api_key.organisation = Organisation.from_db(connection.alias, query.organisation_fields, values[split:])
    api_key.lookup_extras = dict(zip(query.extras, row[len(query.converters) :], strict=True))
    return api_key


_SERVICE_KEY_FIELDS = ("id", "name", "lookup", "digest", "last_used_at", "revoked_at")


@cache
def _service_lookup_query() -> tuple[str, list[list]]:
    """The service key lookup as one fixed SQL text with its scope: one row per organisation of
    the scope (one row with NULL when the scope is empty); and each key column's converters."""
    quote = connection.ops.quote_name
    selected = [("k", ServiceKey._meta.get_field(name)) for name in _SERVICE_KEY_FIELDS]
    columns = [f"k.{quote(field.column)}" for _, field in selected]
    scope = ServiceKey._meta.get_field("organisations")
    # Only quoted identifiers from the models' metadata are interpolated; the lookup is a parameter.
    sql = (
        f"SELECT {', '.join(columns)}, s.{quote(scope.m2m_reverse_name())} "  # noqa: S608
        f"FROM {quote(ServiceKey._meta.db_table)} k "
        f"LEFT JOIN {quote(scope.m2m_db_table())} s ON s.{quote(scope.m2m_column_name())} = k.{quote('id')} "
        f"WHERE k.{quote(ServiceKey._meta.get_field('lookup').column)} = %s"
    )
    return sql, _column_converters(selected)


def service_key_lookup(plaintext: str) -> tuple[ServiceKey, frozenset[int] | None] | None:
    """The unrevoked service key matching ``plaintext`` and its scope (the primary keys of its
    organisations, None for every organisation), or None.

    What ``accounts.services.service_key_verify`` and ``service_key_scope`` decide, in one fixed
    statement (prepared on PostgreSQL) instead of two ORM queries. Nothing is cached between
    requests: a revocation or a change of scope holds from the next request.
    """
    lookup = keys.parse_lookup(plaintext, prefix=keys.SERVICE_KEY_PREFIX)
    if lookup is None:
        return None
    sql, converters = _service_lookup_query()
    with prepared_cursor() as cursor:
        cursor.execute(sql, [lookup])
        rows = cursor.fetchall()
    if not rows:
        return None
    values = _converted(rows[0], converters)
    service_key = ServiceKey.from_db(connection.alias, list(_SERVICE_KEY_FIELDS), values)
    current = _matching_digest(plaintext, service_key.digest)
    if current is None or service_key.revoked_at is not None:
        return None
    if current != service_key.digest:
        ServiceKey.objects.filter(pk=service_key.pk).update(digest=current)
        service_key.digest = current
    scope = frozenset(row[-1] for row in rows if row[-1] is not None)
    return service_key, scope or None


class BearerKeyAuthentication(BaseAuthentication):
    """Authenticate ``Authorization: Bearer <key>`` against the stored API keys.

    - no ``Authorization`` header: returns None (the view's permission then answers 401);
    - any other scheme, a missing or extra token, an unknown or revoked key: 401;
    - a valid key of an inactive organisation, or a valid service key: 403 (never an API call);
    - otherwise ``(ApiKeyUser, ApiKey)``, so ``request.auth`` is the key (its organisation loaded),
      and the key's last-used time is refreshed at most once a minute.

    The key text is never logged nor put in an error message. A view may have more of the
    organisation read in the key's lookup statement: its ``lookup_extras`` (see ``LookupExtra``).
    """

    def authenticate(self, request):
        plaintext = _bearer_token(request, invalid=INVALID_API_KEY)
        if plaintext is None:
            return None
        view = (getattr(request, "parser_context", None) or {}).get("view")
        api_key = api_key_lookup(plaintext, extras=getattr(view, "lookup_extras", ()))
        if api_key is None:
            if service_key_verify(plaintext) is not None:
                raise exceptions.PermissionDenied(SERVICE_KEY_REFUSED)
            raise exceptions.AuthenticationFailed(INVALID_API_KEY)
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
        plaintext = _bearer_token(request, invalid=INVALID_SERVICE_KEY)
        if plaintext is None:
            return None
        found = service_key_lookup(plaintext)
        if found is None:
            if api_key_verify(plaintext) is not None:
                raise exceptions.PermissionDenied(API_KEY_REFUSED)
            raise exceptions.AuthenticationFailed(INVALID_SERVICE_KEY)
        service_key, scope = found
        service_key_touch(service_key=service_key)
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
