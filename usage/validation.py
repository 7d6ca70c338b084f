"""The rules a job must meet to be loaded, in one place.

``import_jobs`` (one JSON Lines line per job) and the ingestion endpoint (one item of a request per
job) judge a job the same way: decode it with ``json_loads``, then ``validate_job`` returns the
``JobInput`` to write or every problem found, as ``FieldError`` values. Nothing here writes; the
only lookups go through the ``OrganisationDirectory`` the caller passes in, which decides which
organisations exist for it (an ingestion key limited to some organisations passes a directory
limited to them, and any other organisation is then reported exactly as an unknown one).

Messages are single lines that quote at most ``EXCERPT_CHARS`` characters of a value, with
unprintable characters escaped, whatever the input holds.
"""

import datetime as dt
import json
import re
import sys
from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

from django.db import connection
from django.utils.dateparse import parse_datetime

from accounts.keys import KEY_PREFIX, SERVICE_KEY_PREFIX
from accounts.models import ORG_ID_RE, ApiKey, Organisation
from portal.db import prepared_cursor

from .models import MAX_AUDIO_DURATION_SECONDS, MAX_TOKENS, Job
from .services import JobInput

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
EXCERPT_CHARS = 40
MAX_EXTERNAL_ID_CHARS = Job._meta.get_field("external_id").max_length
MAX_LANGUAGE_CHARS = Job._meta.get_field("language").max_length
_STATUSES = frozenset(Job.Status.values)
_STATUS_LIST = ", ".join(sorted(_STATUSES))
_ORG_ID = re.compile(ORG_ID_RE)
_ORG_ID_CHARS = Organisation._meta.get_field("org_id").max_length
# Each count's upper bound, and how messages state it.
_LIMITS = {
    "audio_duration_seconds": (
        MAX_AUDIO_DURATION_SECONDS,
        f"{MAX_AUDIO_DURATION_SECONDS:,} seconds (31 days)",
    ),
    "transcription_tokens": (MAX_TOKENS, f"{MAX_TOKENS:,}"),
    "note_tokens": (MAX_TOKENS, f"{MAX_TOKENS:,}"),
}
_NOT_A_MOMENT = "'created_at' must be an ISO 8601 date-time such as 2025-01-03T10:00:00Z"


class FieldError(NamedTuple):
    """One problem of a job: the field it concerns (None: the job as a whole) and a message that
    names the field itself, so that messages can be shown without their fields."""

    field: str | None
    message: str


class KnownOrganisation(NamedTuple):
    """An organisation a directory knows: its primary key and its API keys."""

    pk: int
    key_ids: Mapping[str, int]  # API key name -> primary key, revoked keys included


class OrganisationDirectory:
    """Resolves public organisation ids, with their API key names, for ``validate_job``.

    Each organisation is loaded once and remembered for the life of the directory (``preload``
    loads those of a whole batch in one query): make one per import or request. ``scope``
    (primary keys), when given, is every organisation the caller may write: any other resolves to
    None, exactly as an unknown id does.
    """

    def __init__(self, *, scope: Collection[int] | None = None) -> None:
        self._scope = None if scope is None else frozenset(scope)
        self._known: dict[str, KnownOrganisation | None] = {}

    def resolve(self, org_id: str) -> KnownOrganisation | None:
        if org_id not in self._known:
            self.preload([org_id])
        return self._known[org_id]

    def preload(self, org_ids: Iterable[object]) -> None:
        """Load every organisation of ``org_ids`` not known yet in one query (values that are not
        strings are skipped), so that a batch costs one query whatever its organisations."""
        wanted = {org_id for org_id in org_ids if isinstance(org_id, str) and org_id not in self._known}
        possible = {org_id for org_id in wanted if len(org_id) <= _ORG_ID_CHARS and _ORG_ID.fullmatch(org_id)}
        key_ids: dict[str, dict[str, int]] = {}
        pks: dict[str, int] = {}
        if possible:  # an id no organisation can have needs no query
            for org_id, pk, name, key_id in _organisations_with_keys(sorted(possible)):
                pks[org_id] = pk
                keys = key_ids.setdefault(org_id, {})
                if key_id is not None:
                    keys[name] = key_id
        for org_id in wanted:
            pk = pks.get(org_id)
            in_scope = pk is not None and (self._scope is None or pk in self._scope)
            self._known[org_id] = KnownOrganisation(pk, key_ids[org_id]) if in_scope else None


def _organisations_with_keys(org_ids: list[str]) -> list[tuple[str, int, str | None, int | None]]:
    """(org_id, pk, key name, key pk) of each of these organisations and each of its API keys (a
    row of Nones for the keys when it has none). On PostgreSQL one fixed statement with an array,
    prepared once per connection (an ingestion runs it at every request)."""
    if connection.vendor != "postgresql":
        rows = Organisation.objects.filter(org_id__in=org_ids).values_list(
            "org_id", "pk", "api_keys__name", "api_keys__pk"
        )
        return list(rows)
    q = connection.ops.quote_name
    key_table = q(ApiKey._meta.db_table)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT o.org_id, o.id, k.name, k.id FROM {q(Organisation._meta.db_table)} o "  # noqa: S608
            f"LEFT JOIN {key_table} k ON k.organisation_id = o.id WHERE o.org_id = ANY(%s::text[])",
            [org_ids],
        )
        return cursor.fetchall()


# --- decoding -------------------------------------------------------------------------------------


class InvalidJSON(ValueError):
    """Text that is not one JSON value; the message (one short line) says why."""


class DuplicateFields(dict):
    """A decoded JSON object that named some fields more than once (``duplicates``, in order).

    The object keeps each such field's last value; ``validate_job`` rejects the fields instead.
    """

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, object]]) -> dict:
    record = dict(pairs)
    if len(record) == len(pairs):
        return record
    seen: set[str] = set()
    duplicates: dict[str, None] = {}  # ordered, each name once
    for name, _ in pairs:
        if name in seen:
            duplicates[name] = None
        seen.add(name)
    record = DuplicateFields(record)
    record.duplicates = tuple(duplicates)
    return record


def _constant(name: str) -> float:
    raise InvalidJSON(f"not valid JSON ({name} is not a JSON number)")


_decoder = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)


def json_loads(text: str) -> object:
    """Decode one JSON value, strictly and safely on any input.

    Objects that repeat a field come back as ``DuplicateFields``. Raises ``InvalidJSON`` for bad
    syntax, ``NaN``/``Infinity``, an integer longer than Python converts (4,300 digits by
    default) and nesting too deep to decode, never another exception.
    """
    try:
        return _decoder.decode(text)
    except InvalidJSON:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise InvalidJSON("not valid JSON (nested too deeply)") from None
    except ValueError:  # the only other one: an integer past the int-string conversion limit
        limit = sys.get_int_max_str_digits()
        raise InvalidJSON(f"not valid JSON (an integer of more than {limit:,} digits)") from None


# --- judging ---------------------------------------------------------------------------------------


def excerpt(value: object) -> str:
    """A value as a message quotes it: strings quoted and escaped like Python literals, JSON
    words for true/false/null, containers by kind; at most ``EXCERPT_CHARS`` characters of it
    and '…' when cut."""
    if isinstance(value, str):
        text = repr(value[:EXCERPT_CHARS])  # escapes NUL, lone surrogates, any unprintable
        return text[:-1] + "…" + text[-1] if len(value) > EXCERPT_CHARS else text
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    try:
        text = str(value)
    except ValueError:  # an integer past the int-string conversion limit
        return f"an integer of {value.bit_length():,} bits"
    return text[:EXCERPT_CHARS] + "…" if len(text) > EXCERPT_CHARS else text


def _text(record: dict, name: str, errors: list[FieldError], *, required: bool = True) -> str | None:
    """A required (or, with ``required=False``, nullable) string field, stripped."""
    value = record.get(name)
    if value is None and not required:
        return None
    stripped = value.strip() if isinstance(value, str) else ""
    if not stripped:
        errors.append(FieldError(name, f"'{name}' must be a non-empty string"))
        return None
    if "\x00" in value:
        errors.append(FieldError(name, f"'{name}' must not contain a NUL character (\\u0000)"))
        return None
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            errors.append(FieldError(name, f"'{name}' must not contain a lone surrogate such as \\ud800"))
            return None
    return stripped


def _count(record: dict, name: str, errors: list[FieldError], *, required: bool = False) -> int | None:
    """A whole number from 0 to the field's documented limit; missing means 0 unless required."""
    if name not in record:
        if required:
            errors.append(FieldError(name, f"'{name}' must be a whole number (missing)"))
            return None
        return 0
    value = record[name]
    limit, stated = _LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(FieldError(name, f"'{name}' must be a whole number (got {excerpt(value)})"))
        return None
    if value < 0:
        errors.append(FieldError(name, f"'{name}' must not be negative (got {excerpt(value)})"))
        return None
    if value > limit:
        errors.append(FieldError(name, f"'{name}' must be at most {stated} (got {excerpt(value)})"))
        return None
    return value


def _flag(record: dict, name: str, errors: list[FieldError]) -> bool | None:
    value = record.get(name, False)
    if not isinstance(value, bool):
        errors.append(FieldError(name, f"'{name}' must be true or false (got {excerpt(value)})"))
        return None
    return value


def _moment(raw: object, now: dt.datetime, errors: list[FieldError]) -> dt.datetime | None:
    """``created_at`` as an aware UTC datetime: ISO 8601, UTC when it names no zone, at most
    ``FUTURE_TOLERANCE`` after ``now``, and within the years 1 to 9999 once in UTC."""
    created_at = None
    # ISO 8601 is printable ASCII: Python's and Django's parsers would also take other digits
    # ("２０２５-…"), a trailing NUL or a trailing newline.
    if isinstance(raw, str) and len(raw) > 10 and raw.isascii() and raw.isprintable():
        try:
            created_at = dt.datetime.fromisoformat(raw)
        except ValueError:
            try:  # Django's looser forms, e.g. "2025-1-3 10:00"
                created_at = parse_datetime(raw) if "T" in raw or " " in raw else None
            except ValueError:  # well formed, but no such moment: "2025-02-29T00:00:00Z"
                created_at = None
    if created_at is None:
        errors.append(FieldError("created_at", _NOT_A_MOMENT))
        return None
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=dt.UTC)
    elif created_at.tzinfo is not dt.UTC:
        try:
            created_at = created_at.astimezone(dt.UTC)
        except OverflowError:  # e.g. 0001-01-01T00:30:00+01:00 is in year 0 in UTC
            errors.append(
                FieldError("created_at", f"'created_at' {excerpt(raw)} is before year 1 or after 9999 in UTC")
            )
            return None
    if created_at > now + FUTURE_TOLERANCE:
        errors.append(
            FieldError("created_at", f"'created_at' {excerpt(raw)} is more than 5 minutes in the future")
        )
        return None
    return created_at


def validate_job(
    record: object, *, directory: OrganisationDirectory, now: dt.datetime
) -> JobInput | list[FieldError]:
    """Judge one decoded job (an ``import_jobs`` line, an ingestion item) against the rules.

    Returns the ``JobInput`` to write, or every problem found: first the fields named more than
    once (their last value is judged as well), then field by field in the order of the format.
    An API key name is judged only when its organisation is known; unknown fields are ignored.
    ``now`` is the moment the future limit of ``created_at`` is measured from. Whatever
    ``record`` holds, raises nothing (the directory's own lookups aside).
    """
    if not isinstance(record, dict):
        return [FieldError(None, f"a job must be a JSON object, not {excerpt(record)}")]
    errors: list[FieldError] = []
    if type(record) is DuplicateFields:
        errors.extend(FieldError(name, f"duplicate field {excerpt(name)}") for name in record.duplicates)
    organisation = None
    org_id = _text(record, "org_id", errors)
    if org_id is not None:
        organisation = directory.resolve(org_id)
        if organisation is None:
            errors.append(FieldError("org_id", f"unknown organisation {excerpt(org_id)}"))
    external_id = _text(record, "external_id", errors)
    if external_id is not None and len(external_id) > MAX_EXTERNAL_ID_CHARS:
        errors.append(
            FieldError("external_id", f"'external_id' is longer than {MAX_EXTERNAL_ID_CHARS} characters")
        )
    key_name = _text(record, "api_key", errors, required=False)
    if key_name is not None and organisation is not None and key_name not in organisation.key_ids:
        if key_name.startswith((KEY_PREFIX, SERVICE_KEY_PREFIX)):  # a secret, most likely: not echoed
            reason = "'api_key' looks like a key itself: give the key's name, not its secret"
        else:
            reason = f"unknown API key name {excerpt(key_name)} for {org_id}"
        errors.append(FieldError("api_key", reason))
    created_at = _moment(record.get("created_at"), now, errors)
    language = _text(record, "language", errors)
    if language is not None and len(language) > MAX_LANGUAGE_CHARS:
        errors.append(FieldError("language", f"'language' is longer than {MAX_LANGUAGE_CHARS} characters"))
    audio = _count(record, "audio_duration_seconds", errors, required=True)
    status = record.get("status")
    if isinstance(status, str) and status not in _STATUSES:
        errors.append(
            FieldError("status", f"unknown status {excerpt(status)} (expected one of {_STATUS_LIST})")
        )
    elif not isinstance(status, str):
        got = f"got {excerpt(status)}" if "status" in record else "missing"
        errors.append(FieldError("status", f"'status' must be one of {_STATUS_LIST} ({got})"))
    has_transcript = _flag(record, "has_transcript", errors)
    has_lrc = _flag(record, "has_lrc", errors)
    transcription_tokens = _count(record, "transcription_tokens", errors)
    note_tokens = _count(record, "note_tokens", errors)
    if errors:
        return errors
    return JobInput(
        organisation_id=organisation.pk,
        api_key_id=organisation.key_ids[key_name] if key_name is not None else None,
        external_id=external_id,
        created_at=created_at,
        language=language,
        audio_duration_seconds=audio,
        status=status,
        has_transcript=has_transcript,
        has_lrc=has_lrc,
        transcription_tokens=transcription_tokens,
        note_tokens=note_tokens,
    )
