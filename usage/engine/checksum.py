"""The checksum reconcile (PostgreSQL): find the few organisation-months whose stored aggregates
disagree with their jobs in one parallel pass, so only those get the row-by-row diff.

Diffing every stored row against a fresh grouping costs several times a plain scan of the jobs:
the groupings are wide (organisation, month, key, tier, free; organisation, month, language,
source) and PostgreSQL runs neither in parallel. The whole-table reconcile therefore starts with
one parallel pass that folds each organisation-month of jobs into a single number, a random
linear checksum of the rows the three aggregate tables (monthly, per language, per day) should
hold for it, and compares it with the same checksum of the rows they do hold. Only the months
whose checksums differ get the exact diff.

The checksum of a month is the sum, modulo the prime P, of w(group) * L(values) over its rows:
L combines a row's counts with coefficients drawn afresh for every run, and w is a hash of the
row's group seeded afresh too. Both are linear in the values, so the sum over a month's jobs
equals the sum over the aggregate rows that group them, and any given discrepancy escapes a run
with a chance of about 1 in P (2^31 - 1); the next night draws new coefficients. (A count off by
an exact multiple of P, some two billion, would go unseen.)
"""

import secrets
from dataclasses import dataclass, field

from accounts.models import Organisation
from usage.models import DailyUsage, Job, LanguageUsage, MonthlyUsage

from .aggregation import DAILY_STATUS_COLUMNS, OrgMonth, Scope, execute, fetch, quote, utc_day_sql

_P = 2_147_483_647

_LOW_31_BITS = 2_147_483_647


@dataclass(frozen=True)
class _Coefficients:
    seed: int
    completed: int
    audio: int
    transcription: int
    note: int
    # One per job status, for the daily rows' status counts.
    queued: int
    processing: int
    completed_status: int
    failed: int

    @classmethod
    def draw(cls) -> "_Coefficients":
        # Below 2^29, so that a row's products of a coefficient and a count below 2^31 (or 2^32)
        # add up within a signed 64-bit integer before the one reduction modulo P (at most six
        # such products in a row, each below 2^60).
        return cls(secrets.randbelow(2**62), *(1 + secrets.randbelow(2**29 - 1) for _ in range(8)))

    def status(self, column: str) -> int:
        """The coefficient of a daily status column (``DAILY_STATUS_COLUMNS``)."""
        return {
            "queued_jobs": self.queued,
            "processing_jobs": self.processing,
            "completed_status_jobs": self.completed_status,
            "failed_jobs": self.failed,
        }[column]


def _mod(expression: str) -> str:
    return f"mod({expression}, {_P})"


def _values(c: _Coefficients, jobs: str, completed: str, audio: str, tokens: tuple[str, str] | None) -> str:
    """L: the residue of a row's counts combined with the run's coefficients. The products must fit
    in 64 bits: the inputs are 32-bit columns or residues, or counts that in practice are."""
    terms = [jobs, f"{c.completed}::int8 * {completed}", f"{c.audio}::int8 * {audio}"]
    if tokens is not None:
        terms += [f"{c.transcription}::int8 * {tokens[0]}", f"{c.note}::int8 * {tokens[1]}"]
    return _mod(" + ".join(terms))


def _usage_group(c: _Coefficients, alias: str) -> str:
    """w of a usage group: key id, tier (< 2^15) and free flag packed into one integer, hashed."""
    group = f"COALESCE({alias}.api_key_id, 0) * 131072 + {alias}.tier * 2 + {alias}.is_free::int"
    return f"(hashint8extended({group}, {c.seed}::int8) & {_LOW_31_BITS})"


def _day_group(c: _Coefficients, alias: str, day: str) -> str:
    """w of a daily group: the day (as days since 1970), tier and free flag packed, hashed with a
    seed of its own."""
    group = f"({day} - DATE '1970-01-01')::int8 * 131072 + {alias}.tier * 2 + {alias}.is_free::int"
    return f"(hashint8extended({group}, {c.seed}::int8 + 2) & {_LOW_31_BITS})"


def _language_group(c: _Coefficients, alias: str, via_api: str) -> str:
    """w of a language group: the language hashed with one seed for API jobs, another for web."""
    return f"(hashtextextended({alias}.language, {c.seed}::int8 + ({via_api})::int) & {_LOW_31_BITS})"


@dataclass
class ChecksumCheck:
    """What the checksum pass found in its scope."""

    months: int = 0
    differing: set[OrgMonth] = field(default_factory=set)
    wrong_free: set[int] = field(default_factory=set)
    # Stored jobs per tier of the months whose ranks matter (and whose checksums agree).
    tier_counts: dict[OrgMonth, dict[int, int]] = field(default_factory=dict)


def checksum_check(scope: Scope, *, second_tier_from: int | None) -> ChecksumCheck:
    """Compare each organisation-month of jobs in ``scope`` with its stored rows (PostgreSQL).

    Returns the months that differ and, among the others, the organisations whose stored free
    count is wrong and the stored tier counts of the months whose ranks matter (those from
    ``second_tier_from`` jobs, or holding any job above tier 1). Free counts are compared per
    organisation, so they mean something only when ``scope`` covers whole organisations. Counts
    too large for its 32- and 64-bit arithmetic (see the comments below) raise ``DataError``.
    """
    c = _Coefficients.draw()
    # A job: its counts are small enough to combine unreduced (audio is a 32-bit column; token
    # counts are bounded by MAX_TOKENS, 10^9 < 2^30, so every product fits in 64 bits).
    job = (
        f"1 + CASE WHEN j.has_transcript AND j.has_lrc THEN {c.completed} ELSE 0 END"
        f" + {c.audio}::int8 * j.audio_duration_seconds"
    )
    tokens = f"{c.transcription}::int8 * j.transcription_tokens + {c.note}::int8 * j.note_tokens"
    job_language = _language_group(c, "j", "j.source = 'api'")
    job_day = _day_group(c, "j", utc_day_sql("j.created_at"))
    status = " ".join(
        f"WHEN '{name}' THEN {c.status(column)}" for column, name in DAILY_STATUS_COLUMNS.items()
    )
    job_daily = f"1 + {tokens} + CASE j.status {status} ELSE 0 END"
    # Three products of two residues (each below 2^62): the first two are reduced before the third
    # is added, so the sum stays below 2^63.
    job_checksum = _mod(
        _mod(f"{_usage_group(c, 'j')} * {_mod(f'{job} + {tokens}')} + {job_language} * {_mod(job)}")
        + f" + {job_day} * {_mod(job_daily)}"
    )
    # A stored row: the job counts go in unreduced too, the other sums reduced first.
    jobs, completed_jobs = "s.jobs", "s.completed_jobs"
    audio, tokens = _mod("s.audio_duration_seconds"), (_mod("s.transcription_tokens"), _mod("s.note_tokens"))
    usage_checksum = _mod(f"{_usage_group(c, 's')} * " + _values(c, jobs, completed_jobs, audio, tokens))
    language_checksum = _mod(
        f"{_language_group(c, 's', 's.via_api')} * " + _values(c, jobs, completed_jobs, audio, None)
    )
    daily_values = _mod(
        " + ".join(
            [
                "s.jobs",
                f"{c.transcription}::int8 * {_mod('s.transcription_tokens')}",
                f"{c.note}::int8 * {_mod('s.note_tokens')}",
            ]
            + [f"{c.status(column)}::int8 * s.{column}" for column in DAILY_STATUS_COLUMNS]
        )
    )
    daily_checksum = _mod(f"{_day_group(c, 's', 's.day')} * {daily_values}")
    job_where, job_params = scope.sql("j")
    usage_where, usage_params = scope.sql("s")
    language_where, language_params = scope.sql("s")
    daily_where, daily_params = scope.sql("s")
    threshold = second_tier_from if second_tier_from is not None else 2**62
    # One parallel aggregate over the four tables: jobs add their checksums and stored rows
    # subtract theirs, so a month agrees when its checksum comes to zero. (The branches' column
    # types match exactly: a coercion would stop PostgreSQL from aggregating in parallel.)
    sql = f"""
        WITH m AS MATERIALIZED (
            SELECT x.organisation_id, x.month, SUM(x.jobs) AS jobs, SUM(x.checksum) AS checksum,
                   COALESCE(MAX(x.top_tier), 1) AS top_tier, COALESCE(SUM(x.free), 0) AS free
            FROM (
                SELECT j.organisation_id, j.month, 1 AS jobs, {job_checksum}::int AS checksum,
                       NULL::smallint AS top_tier, NULL::int AS free
                FROM {quote(Job._meta.db_table)} j WHERE {job_where}
                UNION ALL
                SELECT s.organisation_id, s.month, 0, -{usage_checksum}::int, s.tier,
                       CASE WHEN s.is_free THEN s.jobs::int END
                FROM {quote(MonthlyUsage._meta.db_table)} s WHERE {usage_where}
                UNION ALL
                SELECT s.organisation_id, s.month, 0, -{language_checksum}::int, NULL::smallint, NULL::int
                FROM {quote(LanguageUsage._meta.db_table)} s WHERE {language_where}
                UNION ALL
                SELECT s.organisation_id, s.month, 0, -{daily_checksum}::int, NULL::smallint, NULL::int
                FROM {quote(DailyUsage._meta.db_table)} s WHERE {daily_where}
            ) x
            GROUP BY x.organisation_id, x.month
        ), o AS (
            SELECT m.organisation_id, SUM(m.jobs) AS jobs, SUM(m.free) AS free
            FROM m GROUP BY m.organisation_id
        )
        SELECT m.organisation_id, m.month, m.jobs, mod(m.checksum, {_P}) <> 0 AS differs, m.top_tier,
               o.free <> LEAST(organisation.free_job_allowance, o.jobs) AS wrong_free
        FROM m JOIN o ON o.organisation_id = m.organisation_id
        JOIN {quote(Organisation._meta.db_table)} organisation ON organisation.id = m.organisation_id
        WHERE mod(m.checksum, {_P}) <> 0 OR m.jobs >= %s OR m.top_tier > 1
           OR o.free <> LEAST(organisation.free_job_allowance, o.jobs)
        UNION ALL
        SELECT NULL, NULL, COUNT(*) FILTER (WHERE m.jobs > 0), NULL, NULL, NULL FROM m
    """
    check = ChecksumCheck()
    # Compiling these long expressions costs more than it saves.
    execute("SET LOCAL jit = off")
    ranked: list[OrgMonth] = []
    for organisation_id, month, jobs, differs, top_tier, wrong_free in fetch(
        sql, job_params + usage_params + language_params + daily_params + [threshold]
    ):
        if organisation_id is None:  # the last row: how many organisation-months have jobs
            check.months = jobs
        elif differs:
            check.differing.add((organisation_id, month))
        else:
            if wrong_free:
                check.wrong_free.add(organisation_id)
            if jobs >= threshold or top_tier > 1:
                ranked.append((organisation_id, month))
    if ranked:
        # The stored jobs per tier of those months, found through the (organisation, month) index.
        sql = f"""
            SELECT s.organisation_id, s.month, s.tier, CAST(SUM(s.jobs) AS BIGINT)
            FROM {quote(MonthlyUsage._meta.db_table)} s
            JOIN unnest(%s::bigint[], %s::date[]) AS r(organisation_id, month)
              ON r.organisation_id = s.organisation_id AND r.month = s.month
            GROUP BY s.organisation_id, s.month, s.tier
        """
        organisations, months = zip(*ranked, strict=True)
        for organisation_id, month, tier, jobs in fetch(sql, [list(organisations), list(months)]):
            check.tier_counts.setdefault((organisation_id, month), {})[tier] = jobs
    return check
