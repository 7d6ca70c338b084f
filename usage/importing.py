"""Importing job files (JSON Lines): every line judged by ``usage.validation``, then written.

A file is read as bytes, line by line, and must be UTF-8: the first byte that is not stops the
import before anything is written. Each line is decoded with ``json_loads`` and judged with
``validate_job``; an invalid line is reported as ``line N: reason``, its problems joined by "; ".
"""

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from .engine.refresh import usage_refresh_organisations
from .models import Job
from .services import STAGED_COLUMNS, JobInput, jobs_upsert_staged, staged_job_rows
from .validation import InvalidJSON, OrganisationDirectory, json_loads, validate_job


class LineResult(NamedTuple):
    number: int
    job: JobInput | None
    error: str | None


class NotUTF8(ValueError):
    """A line holds bytes that are not UTF-8; the message names the line and the byte."""


def read_jobs(
    source: BinaryIO, *, now: dt.datetime | None = None, directory: OrganisationDirectory | None = None
) -> Iterator[LineResult]:
    """Yield every non-blank line of a JSON Lines byte stream as a job or an error, streaming.

    Raises ``NotUTF8`` at the first line that is not UTF-8 text: the file is not the text it
    claims to be, so no line of it can be trusted.
    """
    now = now or timezone.now()
    directory = directory or OrganisationDirectory()
    offset = 0  # of the line in the file, in bytes
    for number, raw in enumerate(source, start=1):
        try:
            line = raw.decode()
        except UnicodeDecodeError as exc:
            raise NotUTF8(
                f"line {number}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte offset "
                f"{offset + exc.start} of the file (byte {exc.start + 1} of the line)"
            ) from None
        offset += len(raw)
        if not line.strip():
            continue
        try:
            record = json_loads(line)
        except InvalidJSON as exc:
            yield LineResult(number, None, str(exc))
            continue
        outcome = validate_job(record, directory=directory, now=now)
        if isinstance(outcome, JobInput):
            yield LineResult(number, outcome, None)
        else:
            yield LineResult(number, None, "; ".join(error.message for error in outcome))


@dataclass
class ImportReport:
    """What an import read and wrote. ``lines``: the non-blank lines read, the last of them
    numbered ``last_line``; ``written_lines``: the jobs of lines 1 to this one are written
    (committed); ``imported``: every valid line is written and usage is refreshed."""

    lines: int = 0
    last_line: int = 0
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] | None = None
    written_lines: int = 0
    imported: bool = False

    @property
    def invalid(self) -> int:
        return len(self.errors or [])


class ImportAborted(Exception):
    """The import stopped before its end: ``report`` says what it had read and written by then.

    The message is one line saying why. Lines past ``report.written_lines`` are not written.
    """

    def __init__(self, reason: str, report: ImportReport) -> None:
        super().__init__(reason)
        self.report = report


def _one_line(exc: BaseException) -> str:
    """An exception as a short line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


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
        # The organisations of each write batch.
        self.organisations: dict[int, set[int]] = {0: set()}
        self._batch, self._keys, self._organisations = 0, set(), self.organisations[0]

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
            self._organisations = self.organisations[batch] = set()
        key = (job.organisation_id, job.external_id)
        if key in self._keys:
            self.repeats.add(batch)
        self._keys.add(key)
        self._organisations.add(job.organisation_id)
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
    source: str | os.PathLike | BinaryIO,
    *,
    skip_invalid: bool = False,
    progress=None,
    now: dt.datetime | None = None,
) -> ImportReport:
    """Validate every line of ``source`` (a path, or a binary stream such as stdin's), then
    upsert its jobs in batches and refresh usage.

    With any invalid line and no ``skip_invalid``, nothing is written. ``progress`` (optional)
    is called with how many lines each step has advanced, over two passes: reading and
    validating the file, then writing its jobs. Raises ``ImportAborted`` on a line that is not
    UTF-8 (nothing is written, whatever ``skip_invalid``) and on any failure, reading or
    writing: its report says which lines were written before.
    """
    now = now or timezone.now()
    report = ImportReport(errors=[])
    step = "reading the jobs"
    try:
        opened = open(source, "rb") if isinstance(source, str | os.PathLike) else nullcontext(source)  # noqa: SIM115
        with opened as stream, _Staging() as staging:
            pending = 0
            for result in read_jobs(stream, now=now):
                report.lines += 1
                report.last_line = result.number
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
                batch = (first - 1) // WRITE_LINES
                step = f"writing the jobs of lines {first}-{last}"
                outcome = jobs_upsert_staged(
                    table=STAGING_TABLE,
                    lines=(first, last),
                    organisation_ids=staging.organisations.get(batch, ()),
                    repeats=batch in staging.repeats,
                )
                report.written_lines = last
                report.created += outcome.created
                report.updated += outcome.updated
                touched_orgs.update(organisation_id for organisation_id, _ in outcome.touched)
                if progress:  # in lines read, so that both passes fill the same bar
                    done = report.lines * last // last_line
                    progress(done - advanced)
                    advanced = done
            report.written_lines = report.last_line
            if progress:
                progress(report.lines - advanced)
        if touched_orgs:
            step = "refreshing usage"
            usage_refresh_organisations(organisation_ids=sorted(touched_orgs))
    except NotUTF8 as exc:
        raise ImportAborted(str(exc), report) from None
    except Exception as exc:  # whatever it is, the report must say what was written before it
        raise ImportAborted(f"{step} failed: {_one_line(exc)}", report) from exc
    report.imported = True
    return report
