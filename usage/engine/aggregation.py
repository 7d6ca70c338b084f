"""Building the stored aggregates from the raw jobs, set-based, inside the database.

The jobs are grouped and compared with the stored rows in the database, which inserts the missing
rows straight from the grouping; only the few stale or surplus rows are updated or deleted. A
reconcile that finds nothing to correct therefore writes nothing. On PostgreSQL a whole-table
reconcile first checksums every organisation-month (``usage.engine.checksum``) and diffs row by
row only the months whose checksums differ.
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from accounts.models import Organisation
from usage.models import DailyUsage, Job, LanguageUsage, MonthlyUsage
from usage.months import date_from_db

OrgMonth = tuple[int, dt.date]
# Keep a scope's SQL within what every SQLite accepts (999 parameters, expression depth 1,000).
_MAX_PARAMETERS = 900
_MAX_BRANCHES = 100

_USAGE_KEYS = ("organisation_id", "month", "api_key_id", "tier", "is_free")
_USAGE_VALUES = ("jobs", "completed_jobs", "audio_duration_seconds", "transcription_tokens", "note_tokens")
_DAILY_KEYS = ("organisation_id", "month", "day", "tier", "is_free")
_DAILY_VALUES = (
    "jobs",
    "transcription_tokens",
    "note_tokens",
    "queued_jobs",
    "processing_jobs",
    "completed_status_jobs",
    "failed_jobs",
)
DAILY_STATUS_COLUMNS = {
    "queued_jobs": "queued",
    "processing_jobs": "processing",
    "completed_status_jobs": "completed",
    "failed_jobs": "failed",
}
_LANGUAGE_KEYS = ("organisation_id", "month", "language", "via_api")
_LANGUAGE_VALUES = ("jobs", "completed_jobs", "audio_duration_seconds")


def quote(name: str) -> str:
    """The database's quoting of an identifier (a column or table name from the models)."""
    return connection.ops.quote_name(name)


@dataclass(frozen=True)
class Scope:
    """Which organisation-months a recompute covers: all of them, or a list of conditions.

    ``whole_orgs`` covers every month of those organisations; ``months`` some months of others.
    """

    everything: bool = False
    whole_orgs: tuple[int, ...] = ()
    months: tuple[tuple[int | tuple[int, ...], tuple[dt.date, ...]], ...] = ()

    @classmethod
    def of(cls, scope: dict[int, set[dt.date] | None]) -> "Scope":
        """The scope as given, or a wider one when it is too big to spell out.

        A recompute is exact for whatever it covers, so covering more is always safe: many
        organisations become "these organisations in these months" (one ``IN`` each), and too
        many of those become the whole table.
        """
        whole_orgs = tuple(sorted(pk for pk, months in scope.items() if months is None))
        months = tuple(sorted((pk, tuple(sorted(months))) for pk, months in scope.items() if months))
        parameters = len(whole_orgs) + sum(1 + len(some) for _, some in months)
        if parameters <= _MAX_PARAMETERS and len(months) <= _MAX_BRANCHES:
            return cls(whole_orgs=whole_orgs, months=months)
        organisations = tuple(sorted(scope))
        all_months = tuple(sorted({month for _, some in months for month in some}))
        if len(organisations) + len(all_months) > _MAX_PARAMETERS:
            return cls(everything=True)
        if whole_orgs:
            return cls(whole_orgs=organisations)
        return cls(months=((organisations, all_months),))

    @classmethod
    def of_pairs(cls, pairs: Iterable[OrgMonth]) -> "Scope":
        by_org: dict[int, set[dt.date]] = {}
        for organisation_id, month in pairs:
            by_org.setdefault(organisation_id, set()).add(month)
        return cls.of(by_org)

    def union(self, other: "Scope") -> "Scope":
        if self.everything or other.everything:
            return Scope(everything=True)
        return Scope(whole_orgs=self.whole_orgs + other.whole_orgs, months=self.months + other.months)

    def sql(self, alias: str) -> tuple[str, list]:
        """A condition on ``alias.organisation_id`` and ``alias.month``, with its parameters."""
        if self.everything:
            return "1 = 1", []
        adapt = connection.ops.adapt_datefield_value
        parts, params = [], []
        if self.whole_orgs:
            parts.append(f"{alias}.organisation_id IN ({', '.join(['%s'] * len(self.whole_orgs))})")
            params.extend(self.whole_orgs)
        for organisations, months in self.months:
            if isinstance(organisations, int):
                organisations = (organisations,)
            parts.append(
                f"({alias}.organisation_id IN ({', '.join(['%s'] * len(organisations))}) "
                f"AND {alias}.month IN ({', '.join(['%s'] * len(months))}))"
            )
            params.extend(organisations)
            params.extend(adapt(month) for month in months)
        return ("(" + " OR ".join(parts) + ")") if parts else "1 = 0", params


def execute(sql: str, params: list | None = None) -> int:
    """Run one statement; returns its row count."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.rowcount


def fetch(sql: str, params: list | None = None) -> list[tuple]:
    """Run one query; returns all its rows."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def _usage_select(scope: Scope) -> tuple[str, list]:
    where, params = scope.sql("j")
    select = f"""
        SELECT j.organisation_id, j.month, COALESCE(j.api_key_id, 0) AS api_key_id, j.tier, j.is_free,
               COUNT(*) AS jobs,
               SUM(CASE WHEN j.has_transcript AND j.has_lrc THEN 1 ELSE 0 END) AS completed_jobs,
               CAST(SUM(j.audio_duration_seconds) AS BIGINT) AS audio_duration_seconds,
               CAST(SUM(j.transcription_tokens) AS BIGINT) AS transcription_tokens,
               CAST(SUM(j.note_tokens) AS BIGINT) AS note_tokens
        FROM {quote(Job._meta.db_table)} j
        WHERE {where}
        GROUP BY j.organisation_id, j.month, COALESCE(j.api_key_id, 0), j.tier, j.is_free
    """
    return select, params


def _language_select(scope: Scope) -> tuple[str, list]:
    where, params = scope.sql("j")
    select = f"""
        SELECT j.organisation_id, j.month, j.language, (j.source = 'api') AS via_api,
               COUNT(*) AS jobs,
               SUM(CASE WHEN j.has_transcript AND j.has_lrc THEN 1 ELSE 0 END) AS completed_jobs,
               CAST(SUM(j.audio_duration_seconds) AS BIGINT) AS audio_duration_seconds
        FROM {quote(Job._meta.db_table)} j
        WHERE {where}
        GROUP BY j.organisation_id, j.month, j.language, (j.source = 'api')
    """
    return select, params


def utc_day_sql(column: str) -> str:
    """The UTC calendar day of a timestamp column, as the database's date."""
    if connection.vendor == "postgresql":
        if connection.timezone_name == "UTC":
            # Django sets the session's time zone to UTC (USE_TZ), so a plain cast gives the UTC
            # day; a zone conversion per row costs some 0.3 s of CPU per million jobs.
            return f"CAST({column} AS DATE)"
        return f"CAST(({column} AT TIME ZONE 'UTC') AS DATE)"
    return f"date({column})"  # SQLite stores UTC text: its date part is the UTC day


def _daily_select(scope: Scope) -> tuple[str, list]:
    where, params = scope.sql("j")
    day = utc_day_sql("j.created_at")
    statuses = ",\n".join(
        f"SUM(CASE WHEN j.status = '{status}' THEN 1 ELSE 0 END) AS {column}"
        for column, status in DAILY_STATUS_COLUMNS.items()
    )
    select = f"""
        SELECT j.organisation_id, j.month, {day} AS day, j.tier, j.is_free,
               COUNT(*) AS jobs,
               CAST(SUM(j.transcription_tokens) AS BIGINT) AS transcription_tokens,
               CAST(SUM(j.note_tokens) AS BIGINT) AS note_tokens,
               {statuses}
        FROM {quote(Job._meta.db_table)} j
        WHERE {where}
        GROUP BY j.organisation_id, j.month, {day}, j.tier, j.is_free
    """
    return select, params


_SELECTS = {"usage": _usage_select, "language": _language_select, "daily": _daily_select}


def _fresh_select(kind: str, scope: Scope) -> tuple[str, list]:
    return _SELECTS[kind](scope)


_TABLES = {
    "usage": (MonthlyUsage, _USAGE_KEYS, _USAGE_VALUES),
    "language": (LanguageUsage, _LANGUAGE_KEYS, _LANGUAGE_VALUES),
    "daily": (DailyUsage, _DAILY_KEYS, _DAILY_VALUES),
}


def _reconcile_table(kind: str, scope: Scope) -> int:
    """Make one aggregate table equal the jobs' grouping in ``scope``; returns the rows changed.

    Everything happens in the database: missing rows are inserted straight from the grouping
    (a first build writes hundreds of thousands of rows without them passing through Python),
    and only the rare stale or surplus stored rows are updated or deleted.
    """
    model, keys, values = _TABLES[kind]
    table = quote(model._meta.db_table)
    fresh_sql, fresh_params = _fresh_select(kind, scope)
    stored_where, stored_params = scope.sql("s")
    match = " AND ".join(
        f"COALESCE(s.{key}, 0) = f.{key}" if key == "api_key_id" else f"s.{key} = f.{key}" for key in keys
    )
    differs = " OR ".join(f"s.{value} <> f.{value}" for value in values)
    columns = ", ".join((*keys, *values))
    fresh_columns = ", ".join(
        f"NULLIF(f.{column}, 0)" if column == "api_key_id" else f"f.{column}" for column in (*keys, *values)
    )
    if connection.vendor == "postgresql":
        # One statement: the grouping feeds a hash full join, and the differences are written by
        # data-modifying CTEs; nothing but three counts comes back.
        sql = f"""
            WITH f AS ({fresh_sql}),
            d AS MATERIALIZED (
                SELECT s.id AS stored_id, f.* FROM f
                FULL JOIN (SELECT * FROM {table} s WHERE {stored_where}) s ON {match}
                WHERE s.id IS NULL OR f.organisation_id IS NULL OR {differs}
            ),
            deleted AS (
                DELETE FROM {table} t USING d
                WHERE t.id = d.stored_id AND d.organisation_id IS NULL RETURNING 1
            ),
            updated AS (
                UPDATE {table} t SET {", ".join(f"{value} = d.{value}" for value in values)} FROM d
                WHERE t.id = d.stored_id AND d.organisation_id IS NOT NULL RETURNING 1
            ),
            inserted AS (
                INSERT INTO {table} ({columns})
                SELECT {fresh_columns} FROM d f WHERE f.stored_id IS NULL RETURNING 1
            )
            SELECT (SELECT COUNT(*) FROM deleted) + (SELECT COUNT(*) FROM updated)
                 + (SELECT COUNT(*) FROM inserted)
        """
        return fetch(sql, fresh_params + stored_params)[0][0]
    # Elsewhere (SQLite, any 3.x version): group once into a temporary table, then the halves
    # of the full join, one statement each.
    fresh = f"usage_fresh_{kind}"
    execute(f"DROP TABLE IF EXISTS {fresh}")
    execute(f"CREATE TEMPORARY TABLE {fresh} AS {fresh_sql}", fresh_params)
    execute(f"CREATE INDEX {fresh}_keys ON {fresh} ({', '.join(keys)})")
    try:
        surplus = [
            row[0]
            for row in fetch(
                f"SELECT s.id FROM {table} s WHERE {stored_where} "
                f"AND NOT EXISTS (SELECT 1 FROM {fresh} f WHERE {match})",
                stored_params,
            )
        ]
        stale = fetch(
            f"SELECT {', '.join(f'f.{value}' for value in values)}, s.id "
            f"FROM {fresh} f JOIN {table} s ON {match} WHERE {differs}"
        )
        inserted = execute(
            f"INSERT INTO {table} ({columns}) SELECT {fresh_columns} FROM {fresh} f "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} s WHERE {match})"
        )
        with connection.cursor() as cursor:
            for start in range(0, len(surplus), 500):
                chunk = surplus[start : start + 500]
                cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)
            if stale:
                assignments = ", ".join(f"{value} = %s" for value in values)
                cursor.executemany(f"UPDATE {table} SET {assignments} WHERE id = %s", stale)
    finally:
        execute(f"DROP TABLE IF EXISTS {fresh}")
    return len(surplus) + len(stale) + inserted


def stored_reconcile(*, usage_scope: Scope, language_scope: Scope | None = None) -> int:
    """Make the aggregate tables equal the jobs' grouping in scope; returns the rows corrected.

    The daily table depends on the same tiers and free flags as the monthly one, so it is
    reconciled in ``usage_scope`` too.
    """
    if connection.vendor == "postgresql":
        # A reconcile groups hundreds of thousands of rows: keep the hash tables in memory.
        execute("SET LOCAL work_mem = '64MB'")
    corrected = _reconcile_table("usage", usage_scope)
    corrected += _reconcile_table("daily", usage_scope)
    if language_scope is not None:
        corrected += _reconcile_table("language", language_scope)
    return corrected


def stored_month_count(scope: Scope) -> int:
    """How many organisation-months the stored usage rows in ``scope`` cover."""
    where, params = scope.sql("s")
    sql = (
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {quote(MonthlyUsage._meta.db_table)} s WHERE {where} "
        "GROUP BY s.organisation_id, s.month) m"
    )
    return fetch(sql, params)[0][0]


def stored_tier_counts(scope: Scope, *, second_tier_from: int | None) -> list[tuple[int, dt.date, int, int]]:
    """(organisation, month, tier, jobs) of every stored month in scope that reaches
    ``second_tier_from`` jobs or has jobs above tier 1: the only months whose ranks matter."""
    table = quote(MonthlyUsage._meta.db_table)
    where, params = scope.sql("s")
    threshold = second_tier_from if second_tier_from is not None else 2**62
    sql = f"""
        SELECT s.organisation_id, s.month, s.tier, SUM(s.jobs)
        FROM {table} s
        JOIN (SELECT organisation_id, month FROM {table} s WHERE {where}
              GROUP BY organisation_id, month HAVING SUM(jobs) >= %s OR MAX(tier) > 1) m
          ON m.organisation_id = s.organisation_id AND m.month = s.month
        GROUP BY s.organisation_id, s.month, s.tier
    """
    return [
        (org, date_from_db(month), tier, int(jobs))
        for org, month, tier, jobs in fetch(sql, [*params, threshold])
    ]


def stored_wrong_free_counts(scope: Scope) -> list[int]:
    """Organisations whose stored number of free jobs differs from min(allowance, all jobs).

    Only meaningful for organisations whose every month is in ``scope``.
    """
    where, params = scope.sql("s")
    sql = f"""
        SELECT o.id FROM {quote(Organisation._meta.db_table)} o
        JOIN (SELECT organisation_id, SUM(jobs) AS total,
                     SUM(CASE WHEN is_free THEN jobs ELSE 0 END) AS free
              FROM {quote(MonthlyUsage._meta.db_table)} s WHERE {where} GROUP BY organisation_id) f
          ON f.organisation_id = o.id
        WHERE f.free <> CASE WHEN o.free_job_allowance < f.total THEN o.free_job_allowance ELSE f.total END
        ORDER BY o.id
    """
    return [row[0] for row in fetch(sql, params)]


def job_month_counts(scope: Scope) -> list[tuple[int, dt.date, int, list[int]]]:
    """(organisation, month, jobs, tiers present) for the jobs in ``scope`` (a small scope)."""
    where, params = scope.sql("j")
    sql = (
        f"SELECT j.organisation_id, j.month, j.tier, COUNT(*) FROM {quote(Job._meta.db_table)} j "
        f"WHERE {where} GROUP BY j.organisation_id, j.month, j.tier"
    )
    months: dict[OrgMonth, dict[int, int]] = {}
    for org, month, tier, jobs in fetch(sql, params):
        month = date_from_db(month)
        months.setdefault((org, month), {})[tier] = jobs
    return [
        (org, month, sum(tiers.values()), sorted(tiers)) for (org, month), tiers in sorted(months.items())
    ]
