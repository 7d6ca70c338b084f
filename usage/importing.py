"""Reading job files (JSON Lines) into validated ``JobInput`` values, line by line."""

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Organisation

from .engine.refresh import usage_refresh_organisations
from .models import Job
from .services import STAGED_COLUMNS, JobInput, jobs_upsert_staged, staged_job_rows

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
_STATUSES = set(Job.Status.values)
_COUNT_FIELDS = ("audio_duration_seconds", "transcription_tokens", "note_tokens")


class InvalidLine(ValueError):
    """A line that cannot be imported; the message says why."""


class LineResult(NamedTuple):
    number: int
    job: JobInput | None
    error: str | None


class _Directory:
    """Organisations and their key names, loaded once per organisation."""

    def __init__(self) -> None:
        self._orgs: dict[str, tuple[int, dict[str, int]] | None] = {}

    def resolve(self, org_id: str) -> tuple[int, dict[str, int]] | None:
        if org_id not in self._orgs:
            # One query: the organisation joined with its keys (a row of Nones when it has none).
            rows = Organisation.objects.filter(org_id=org_id).values_list(
                "pk", "api_keys__name", "api_keys__pk"
            )
            rows = list(rows)
            key_ids = {name: key_id for _, name, key_id in rows if key_id is not None}
            self._orgs[org_id] = (rows[0][0], key_ids) if rows else None
        return self._orgs[org_id]


def _text(record: dict, name: str, *, required: bool = True) -> str | None:
    value = record.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidLine(f"'{name}' must be a non-empty string")
    return value.strip()


def _count(record: dict, name: str, *, default: int | None = None) -> int:
    value = record.get(name, default)
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        raise InvalidLine(f"'{name}' must be a whole number")
    if value < 0:
        raise InvalidLine(f"'{name}' must not be negative (got {value})")
    return value


def _flag(record: dict, name: str) -> bool:
    value = record.get(name, False)
    if not isinstance(value, bool):
        raise InvalidLine(f"'{name}' must be true or false")
    return value


def _moment(raw: object) -> dt.datetime:
    created_at = None
    if isinstance(raw, str) and len(raw) > 10:  # a bare date is not a moment
        try:
            created_at = dt.datetime.fromisoformat(raw)
        except ValueError:
            created_at = parse_datetime(raw) if "T" in raw or " " in raw else None
    if created_at is None:
        raise InvalidLine("'created_at' must be an ISO 8601 date-time such as 2025-01-03T10:00:00Z")
    if created_at.tzinfo is None:
        return created_at.replace(tzinfo=dt.UTC)
    return created_at if created_at.tzinfo is dt.UTC else created_at.astimezone(dt.UTC)


def parse_job(record: object, *, directory: _Directory, now: dt.datetime) -> JobInput:
    """Validate one decoded line; raises ``InvalidLine`` with the reason."""
    if not isinstance(record, dict):
        raise InvalidLine("a line must be a JSON object")
    org_id = _text(record, "org_id")
    resolved = directory.resolve(org_id)
    if resolved is None:
        raise InvalidLine(f"unknown organisation '{org_id}'")
    organisation_id, key_ids = resolved
    key_name = _text(record, "api_key", required=False)
    if key_name is not None and key_name not in key_ids:
        raise InvalidLine(f"unknown API key name '{key_name}' for {org_id}")
    created_at = _moment(record.get("created_at"))
    if created_at > now + FUTURE_TOLERANCE:
        raise InvalidLine(f"'created_at' {record['created_at']} is more than 5 minutes in the future")
    status = record.get("status")
    if status not in _STATUSES:
        raise InvalidLine(f"unknown status {status!r} (expected one of {', '.join(sorted(_STATUSES))})")
    external_id = _text(record, "external_id")
    if len(external_id) > 200:
        raise InvalidLine("'external_id' is longer than 200 characters")
    language = _text(record, "language")
    if len(language) > 64:
        raise InvalidLine("'language' is longer than 64 characters")
    return JobInput(
        organisation_id=organisation_id,
        api_key_id=key_ids[key_name] if key_name is not None else None,
        external_id=external_id,
        created_at=created_at,
        language=language,
        audio_duration_seconds=_count(record, "audio_duration_seconds"),
        status=status,
        has_transcript=_flag(record, "has_transcript"),
        has_lrc=_flag(record, "has_lrc"),
        transcription_tokens=_count(record, "transcription_tokens", default=0),
        note_tokens=_count(record, "note_tokens", default=0),
    )


def read_jobs(
    path: str, *, now: dt.datetime | None = None, directory: _Directory | None = None
) -> Iterator[LineResult]:
    """Yield every non-blank line of a JSON Lines file as a job or an error, streaming."""
    now = now or timezone.now()
    directory = directory or _Directory()
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield LineResult(number, None, f"not valid JSON ({exc.msg})")
                continue
            try:
                yield LineResult(number, parse_job(record, directory=directory, now=now), None)
            except InvalidLine as exc:
                yield LineResult(number, None, str(exc))


@dataclass
class ImportReport:
    lines: int = 0
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] | None = None
    imported: bool = False

    @property
    def invalid(self) -> int:
        return len(self.errors or [])


STAGE_ROWS = 5_000  # valid lines per insert into the staging table
WRITE_LINES = 20_000  # lines of the file per transaction when the jobs are written
STAGING_TABLE = "usage_import_staging"


class _Staging:
    """A temporary table of validated lines: the file is parsed once, and the jobs are then
    written from it by the database, a range of lines per transaction.

    Temporary tables live in the connection's own scratch space (on SQLite, a separate file), so
    the memory used does not grow with the file, and the jobs are locked only by the short write
    transactions that follow (and, on SQLite, for the moment each batch of lines is staged).
    """

    def __init__(self) -> None:
        self.rows: list[tuple[int, JobInput]] = []
        self.last_line = 0
        # Which write batches (of WRITE_LINES lines) hold a job more than once.
        self.repeats: set[int] = set()
        self._batch, self._keys = 0, set()

    def __enter__(self) -> "_Staging":
        fields = {field.column: field for field in Job._meta.concrete_fields}
        types = {"line": "integer PRIMARY KEY"}
        types.update((column, fields[column].db_type(connection)) for column in STAGED_COLUMNS[1:])
        self._drop()
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {STAGING_TABLE} ("
                + ", ".join(f"{connection.ops.quote_name(name)} {kind}" for name, kind in types.items())
                + ")"
            )
        return self

    def __exit__(self, *exc) -> None:
        self._drop()

    def _drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")

    def add(self, line: int, job: JobInput) -> None:
        self.rows.append((line, job))
        self.last_line = line
        batch = (line - 1) // WRITE_LINES
        if batch != self._batch:
            self._batch, self._keys = batch, set()
        key = (job.organisation_id, job.external_id)
        if key in self._keys:
            self.repeats.add(batch)
        self._keys.add(key)
        if len(self.rows) >= STAGE_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        columns = ", ".join(connection.ops.quote_name(column) for column in STAGED_COLUMNS)
        placeholders = ", ".join(["%s"] * len(STAGED_COLUMNS))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {STAGING_TABLE} ({columns}) VALUES ({placeholders})",  # noqa: S608 (identifiers)
                staged_job_rows(self.rows),
            )
        self.rows.clear()


def jobs_import_file(
    path: str,
    *,
    skip_invalid: bool = False,
    progress=None,
    now: dt.datetime | None = None,
) -> ImportReport:
    """Validate every line of ``path``, then upsert its jobs in batches and refresh usage.

    With any invalid line and no ``skip_invalid``, nothing is written. ``progress`` (optional)
    is called with how many lines each step has advanced, over two passes: reading and
    validating the file, then writing its jobs.
    """
    now = now or timezone.now()
    report = ImportReport(errors=[])
    pending = 0
    with _Staging() as staging:
        for result in read_jobs(path, now=now):
            report.lines += 1
            if result.error:
                report.errors.append((result.number, result.error))
            elif skip_invalid or not report.errors:  # after an error, only validating goes on
                staging.add(result.number, result.job)
            pending += 1
            if progress and pending == STAGE_ROWS:
                progress(pending)
                pending = 0
        if progress:
            progress(pending)
        if report.errors and not skip_invalid:
            return report
        staging.flush()

        touched_orgs: set[int] = set()
        last_line, advanced = staging.last_line, 0
        for first in range(1, last_line + 1, WRITE_LINES):
            last = min(first + WRITE_LINES - 1, last_line)
            outcome = jobs_upsert_staged(
                table=STAGING_TABLE,
                lines=(first, last),
                repeats=(first - 1) // WRITE_LINES in staging.repeats,
            )
            report.created += outcome.created
            report.updated += outcome.updated
            touched_orgs.update(organisation_id for organisation_id, _ in outcome.touched)
            if progress:  # in lines read, so that both passes fill the same bar
                done = report.lines * last // last_line
                progress(done - advanced)
                advanced = done
        if progress:
            progress(report.lines - advanced)
    if touched_orgs:
        usage_refresh_organisations(organisation_ids=sorted(touched_orgs))
    report.imported = True
    return report
