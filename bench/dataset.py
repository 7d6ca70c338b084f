"""The benchmark data set: realistic, skewed, deterministic, generated once and reused.

Shape (for N jobs): one organisation with 20 % of the jobs, two with 15 % and 10 %, a reference
organisation with 1,000 jobs, and the rest spread over the other organisations with a Pareto
(heavy-tailed) law; every organisation has 5 keys used unevenly plus some web jobs, grows month
over month, and about 10 % have a free-job allowance. At 1,000,000 jobs the three largest cross
tier3 (more than 10,000 jobs in a month) in their recent months and many others cross tier2.

The same seeded stream of jobs feeds the database loader (set-based: ``executemany`` on SQLite,
``COPY`` on PostgreSQL) and the JSON Lines files of the import benchmark, so every vendor and
every run sees the same jobs. A marker row in the database records the parameters; the data set
is regenerated only when they change (or the migrations do).

(Long because the generator, its shape parameters and the reuse marker belong together.)
"""

import base64
import datetime as dt
import hashlib
import itertools
import json
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import DatasetInfo, OrgInfo, log, progress_bar

GENERATOR_VERSION = 1
SEED = 20250101
MARKER_TABLE = "bench_marker"
LANGUAGES = (
    ("English", 34),
    ("Hindi", 20),
    ("Spanish", 11),
    ("Portuguese", 8),
    ("Tamil", 7),
    ("Bengali", 6),
    ("Arabic", 5),
    ("Japanese", 5),
    ("French", 4),
)
STATUSES = (("completed", 88), ("failed", 6), ("queued", 4), ("processing", 2))
KEY_NAMES = ("production", "staging", "mobile", "batch", "ci")
KEY_WEIGHTS = (40, 25, 15, 12, 8)
ALLOWANCES = (100, 500, 1_000, 5_000)
JOB_COLUMNS = (
    "organisation_id",
    "api_key_id",
    "source",
    "external_id",
    "created_at",
    "language",
    "audio_duration_seconds",
    "status",
    "has_transcript",
    "has_lrc",
    "transcription_tokens",
    "note_tokens",
    "month",
    "tier",
    "is_free",
)


@dataclass(frozen=True)
class DatasetSpec:
    jobs: int
    organisations: int
    months: int = 24
    keys_per_org: int = len(KEY_NAMES)

    @classmethod
    def for_jobs(cls, jobs: int) -> "DatasetSpec":
        """1,000 organisations at 1M jobs; one organisation per 1,000 jobs below (at least 10)."""
        return cls(jobs=jobs, organisations=max(10, min(1000, jobs // 1000)))

    def identity(self) -> dict:
        """What the generated rows depend on; a change means regenerating."""
        return asdict(self) | {"version": GENERATOR_VERSION, "seed": SEED}


@dataclass(frozen=True)
class OrgPlan:
    index: int
    role: str  # "big", "large", "small-reference" or "" for the long tail
    jobs: int
    growth: float
    web_share: float
    allowance: int
    monthly: tuple[int, ...]

    @property
    def org_id(self) -> str:
        return f"org_bench{self.index:04d}"

    @property
    def name(self) -> str:
        return f"Bench {self.role or 'org'} {self.index:04d}"

    def key_lookup(self, key_index: int) -> str:
        return f"bench{self.index:05d}k{key_index}"  # 12 characters, like a real lookup id

    def key_plaintext(self, key_index: int) -> str:
        secret = hashlib.sha256(f"{SEED}:{self.index}:{key_index}".encode()).digest()
        return f"upk_{self.key_lookup(key_index)}_{base64.urlsafe_b64encode(secret).decode().rstrip('=')}"


def _split(total: int, weights: list[float], *, minimum: int = 0) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder), each ≥ minimum."""
    base = [minimum] * len(weights)
    rest = total - minimum * len(weights)
    scale = rest / sum(weights)
    exact = [weight * scale for weight in weights]
    shares = [int(value) for value in exact]
    leftover = rest - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[:leftover]:
        shares[i] += 1
    return [b + s for b, s in zip(base, shares, strict=True)]


def plan_organisations(spec: DatasetSpec) -> list[OrgPlan]:
    """Sizes, growth, web share and allowance of every organisation of the data set."""
    rng = random.Random(SEED)
    head = [
        ("big", round(spec.jobs * 0.20), 0.10),
        ("large", round(spec.jobs * 0.15), 0.09),
        ("large", round(spec.jobs * 0.10), 0.10),
        ("small-reference", min(1000, spec.jobs // 10), 0.0),
    ]
    tail_count = spec.organisations - len(head)
    tail_total = spec.jobs - sum(size for _, size, _ in head)
    tail_sizes = _split(
        tail_total, [min(rng.paretovariate(1.1), 400.0) for _ in range(tail_count)], minimum=1
    )
    plans = []
    for index in range(spec.organisations):
        if index < len(head):
            role, size, growth = head[index]
            web_share = 0.10
        else:
            role, size = "", tail_sizes[index - len(head)]
            growth = rng.uniform(-0.02, 0.10)
            web_share = rng.choice((0.0, 0.05, 0.10, 0.20, 0.50))
        allowance = 0
        if index % 10 == 1:  # 10 % of the organisations, the 15 % one among them
            allowance = 5_000 if role == "large" else rng.choice(ALLOWANCES)
        monthly = tuple(_split(size, [(1 + growth) ** m for m in range(spec.months)]))
        plans.append(OrgPlan(index, role, size, growth, web_share, allowance, monthly))
    return plans


def month_list(end_month: dt.date, count: int) -> list[dt.date]:
    index = end_month.year * 12 + end_month.month - 1
    return [dt.date(i // 12, i % 12 + 1, 1) for i in range(index - count + 1, index + 1)]


def default_end_month(today: dt.date | None = None) -> dt.date:
    """The last complete UTC month: every generated job lies in the past."""
    today = today or dt.datetime.now(dt.UTC).date()
    first = today.replace(day=1)
    return (first - dt.timedelta(days=1)).replace(day=1)


@dataclass(frozen=True, slots=True)
class JobRow:
    org_index: int
    key_index: int | None
    external_id: str
    created_at: dt.datetime  # naive UTC
    language: str
    audio_duration_seconds: int
    status: str
    has_transcript: bool
    has_lrc: bool
    transcription_tokens: int
    note_tokens: int
    month: dt.date


def job_rows(spec: DatasetSpec, plans: list[OrgPlan], end_month: dt.date) -> Iterator[JobRow]:
    """Every job of the data set, month by month, in ``created_at`` order (the platform's order)."""
    rng = random.Random(SEED + 1)
    languages = [name for name, _ in LANGUAGES]
    language_cum = list(itertools.accumulate(weight for _, weight in LANGUAGES))
    statuses = [name for name, _ in STATUSES]
    status_cum = list(itertools.accumulate(weight for _, weight in STATUSES))
    key_cum = list(itertools.accumulate(KEY_WEIGHTS))
    keys = list(range(len(KEY_NAMES)))
    sequence = 0
    for position, month in enumerate(month_list(end_month, spec.months)):
        start = dt.datetime(month.year, month.month, 1)
        following = dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1)
        seconds = int((following - start).total_seconds())
        stamped = []
        for plan in plans:
            for _ in range(plan.monthly[position]):
                stamped.append((rng.randrange(seconds), plan.index, plan.web_share))
        stamped.sort()
        for offset, org_index, web_share in stamped:
            sequence += 1
            key_index = None if rng.random() < web_share else rng.choices(keys, cum_weights=key_cum)[0]
            status = rng.choices(statuses, cum_weights=status_cum)[0]
            duration = min(int(rng.lognormvariate(5.2, 0.9)) + 5, 4 * 3600)
            completed = status == "completed"
            has_transcript = completed or (status == "failed" and rng.random() < 0.3)
            has_lrc = completed and rng.random() < 0.92
            yield JobRow(
                org_index=org_index,
                key_index=key_index,
                external_id=f"job-{sequence:08d}",
                created_at=start + dt.timedelta(seconds=offset),
                language=rng.choices(languages, cum_weights=language_cum)[0],
                audio_duration_seconds=duration,
                status=status,
                has_transcript=has_transcript,
                has_lrc=has_lrc,
                transcription_tokens=int(duration * rng.uniform(1.5, 3.5)) if has_transcript else 0,
                note_tokens=rng.randint(50, 600) if completed else 0,
                month=month,
            )


# --- Writing into the database -------------------------------------------------------------------


def create_organisations(plans: list[OrgPlan]) -> tuple[dict[int, int], dict[tuple[int, int], int]]:
    """Insert the organisations and their keys; returns their pks by plan index (and key index)."""
    from django.conf import settings

    from accounts import keys as key_crypto
    from accounts.models import ApiKey, Organisation

    organisations = Organisation.objects.bulk_create(
        Organisation(org_id=plan.org_id, name=plan.name, free_job_allowance=plan.allowance) for plan in plans
    )
    org_pks = {plan.index: org.pk for plan, org in zip(plans, organisations, strict=True)}
    api_keys = []
    for plan in plans:
        for key_index, key_name in enumerate(KEY_NAMES):
            api_keys.append(
                ApiKey(
                    organisation_id=org_pks[plan.index],
                    name=key_name,
                    lookup=plan.key_lookup(key_index),
                    digest=key_crypto.key_digest(
                        plan.key_plaintext(key_index), signing_key=settings.SECRET_KEY
                    ),
                )
            )
    ApiKey.objects.bulk_create(api_keys, batch_size=2000)
    key_pks = {
        (plan_index, key_index): pk
        for pk, lookup in ApiKey.objects.filter(lookup__startswith="bench").values_list("pk", "lookup")
        for plan_index, key_index in [(int(lookup[5:10]), int(lookup[11:]))]
    }
    return org_pks, key_pks


def _db_values(row: JobRow, org_pks: dict[int, int], key_pks: dict[tuple[int, int], int]) -> tuple:
    key_pk = None if row.key_index is None else key_pks[(row.org_index, row.key_index)]
    return (
        org_pks[row.org_index],
        key_pk,
        "web" if key_pk is None else "api",
        row.external_id,
        row.created_at,
        row.language,
        row.audio_duration_seconds,
        row.status,
        row.has_transcript,
        row.has_lrc,
        row.transcription_tokens,
        row.note_tokens,
        row.month,
        1,
        False,
    )


def _secondary_indexes() -> list[tuple[str, str]]:
    """(name, CREATE statement) of the job table's indexes that back no constraint."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = 'usage_job' AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint WHERE conrelid = 'usage_job'::regclass)"
            )
        else:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'usage_job' "
                "AND sql IS NOT NULL"
            )
        return cursor.fetchall()


def insert_jobs(rows: Iterator[JobRow], *, total: int, org_pks, key_pks) -> None:
    """Bulk-insert jobs set-based (derived ``tier``/``is_free`` left for the recompute to set).

    Secondary indexes are dropped during the load and rebuilt after it: much faster than
    maintaining them row by row, and the rebuilt indexes are what a long-lived table has anyway.
    """
    from django.db import connection

    indexes = _secondary_indexes()
    with connection.cursor() as cursor:
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    try:
        _insert_rows(rows, total=total, org_pks=org_pks, key_pks=key_pks)
    finally:
        log(f"  rebuilding {len(indexes)} indexes")
        with connection.cursor() as cursor:
            for _, create in indexes:
                cursor.execute(create)


def _insert_rows(rows: Iterator[JobRow], *, total: int, org_pks, key_pks) -> None:
    from django.db import connection

    connection.ensure_connection()
    bar = progress_bar(total=total, desc="generate jobs")
    batch_size = 20_000
    if connection.vendor == "postgresql":
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY usage_job ({', '.join(JOB_COLUMNS)}) FROM STDIN") as copy,
        ):
            for number, row in enumerate(rows, start=1):
                values = list(_db_values(row, org_pks, key_pks))
                values[4] = values[4].replace(tzinfo=dt.UTC)
                copy.write_row(values)
                if number % batch_size == 0:
                    _tick(bar, batch_size, number, total)
    else:
        raw = connection.connection
        sql = f"INSERT INTO usage_job ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})"
        raw.execute("PRAGMA synchronous=OFF")
        done = 0
        while True:
            chunk = [
                _sqlite_values(_db_values(row, org_pks, key_pks))
                for row in itertools.islice(rows, batch_size)
            ]
            if not chunk:
                break
            raw.executemany(sql, chunk)
            raw.commit()
            done += len(chunk)
            _tick(bar, len(chunk), done, total)
        raw.execute("PRAGMA synchronous=NORMAL")
    bar.close()


def _tick(bar, step: int, done: int, total: int) -> None:
    """Advance the bar; without a terminal, log every 10 steps instead."""
    bar.update(step)
    if bar.disable and done % (step * 10) == 0:
        log(f"  {done:,} / {total:,} jobs")


def _sqlite_values(values: tuple) -> tuple:
    """Django's own SQLite representation: ISO text for dates, 0/1 for booleans."""
    out = list(values)
    out[4] = out[4].isoformat(sep=" ")
    out[12] = out[12].isoformat()
    out[8], out[9], out[14] = int(out[8]), int(out[9]), int(out[14])
    return tuple(out)


# --- The marker and the data set's life cycle ----------------------------------------------------


def _migration_state() -> list[str]:
    from django.db.migrations.loader import MigrationLoader

    return sorted(
        f"{app}.{name}" for app, name in MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes()
    )


def _full_identity(spec: DatasetSpec) -> dict:
    return spec.identity() | {"migrations": _migration_state()}


def _secret_fingerprint() -> str:
    """Key digests depend on SECRET_KEY; benchmarks that call the API need them to verify."""
    from django.conf import settings

    return hashlib.sha256(settings.SECRET_KEY.encode()).hexdigest()[:12]


def _rekey(spec: DatasetSpec) -> None:
    """Recompute the digests of the generated keys under the current SECRET_KEY."""
    from django.conf import settings

    from accounts import keys as key_crypto
    from accounts.models import ApiKey

    plaintexts = {
        plan.key_lookup(k): plan.key_plaintext(k)
        for plan in plan_organisations(spec)
        for k in range(len(KEY_NAMES))
    }
    api_keys = list(ApiKey.objects.filter(lookup__in=plaintexts))
    for api_key in api_keys:
        api_key.digest = key_crypto.key_digest(plaintexts[api_key.lookup], signing_key=settings.SECRET_KEY)
    ApiKey.objects.bulk_update(api_keys, ["digest"], batch_size=1000)


def read_marker() -> dict | None:
    from django.db import connection

    if MARKER_TABLE not in connection.introspection.table_names():
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT value FROM {MARKER_TABLE} WHERE name = 'dataset'")
        row = cursor.fetchone()
    return json.loads(row[0]) if row else None


def write_marker(marker: dict) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (name varchar(40) PRIMARY KEY, value text NOT NULL)"
        )
        cursor.execute(f"DELETE FROM {MARKER_TABLE} WHERE name = 'dataset'")
        cursor.execute(
            f"INSERT INTO {MARKER_TABLE} (name, value) VALUES ('dataset', %s)", [json.dumps(marker)]
        )


def reset_database() -> None:
    """Empty the benchmark database (SQLite: delete the file; PostgreSQL: recreate the schema)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_schema()")
            schema = cursor.fetchone()[0]
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            cursor.execute(f'CREATE SCHEMA "{schema}"')
        return
    path = Path(connection.settings_dict["NAME"])
    connection.close()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def ensure_dataset(spec: DatasetSpec) -> DatasetInfo:
    """The data set of ``spec`` in the current database: reused if its marker matches, else made."""
    from django.core.management import call_command
    from django.db import connection

    identity = _full_identity(spec)
    marker = read_marker() if _database_exists() else None
    stored = dict(marker.get("identity") or {}) if marker else {}
    stored.pop("secret_key", None)  # kept outside the identity since the generator's version 1
    if marker and stored == identity:
        log(f"reusing the {spec.jobs:,}-job data set generated {marker['generated_at']}")
        if marker.get("secret_key") != _secret_fingerprint():
            log("  SECRET_KEY changed: re-signing the generated API keys")
            _rekey(spec)
            marker["secret_key"] = _secret_fingerprint()
            write_marker(marker)
        return _info(spec, marker)
    log(f"generating the {spec.jobs:,}-job data set ({spec.organisations:,} organisations)")
    reset_database()
    call_command("migrate", verbosity=0, interactive=False)
    plans = plan_organisations(spec)
    end_month = default_end_month()
    org_pks, key_pks = create_organisations(plans)
    started = time.perf_counter()
    insert_jobs(job_rows(spec, plans, end_month), total=spec.jobs, org_pks=org_pks, key_pks=key_pks)
    log(f"  inserted in {time.perf_counter() - started:.1f} s")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    cold = _cold_recompute(spec)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # what autovacuum would do after the recompute's updates
            cursor.execute("VACUUM ANALYZE")
    marker = {
        "identity": identity,
        "secret_key": _secret_fingerprint(),
        "end_month": end_month.isoformat(),
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cold_recompute_seconds": cold,
    }
    write_marker(marker)
    return _info(spec, marker)


def _database_exists() -> bool:
    from django.db import connection

    if connection.vendor == "sqlite":
        return Path(connection.settings_dict["NAME"]).exists()
    return True


def _cold_recompute(spec: DatasetSpec) -> float:
    """The first recompute: every tier, free flag and aggregate from scratch (timed, once)."""
    from usage.engine.recompute import usage_recompute

    log("  first recompute (tiers, free flags, aggregates from scratch)")
    bar = progress_bar(total=None, desc="recompute", unit="org-month")
    started = time.perf_counter()
    result = usage_recompute(progress=bar.update)
    elapsed = time.perf_counter() - started
    bar.close()
    log(
        f"  first recompute {elapsed:.1f} s: {result.months:,} org-months, {result.jobs_retiered:,} jobs "
        f"re-tiered, {result.free_flags_fixed:,} made free, {result.rows_corrected:,} aggregate rows written"
    )
    return elapsed


def _info(spec: DatasetSpec, marker: dict) -> DatasetInfo:
    from accounts.models import Organisation

    plans = plan_organisations(spec)
    months = [f"{m:%Y-%m}" for m in month_list(dt.date.fromisoformat(marker["end_month"]), spec.months)]
    pks = dict(Organisation.objects.filter(org_id__startswith="org_bench").values_list("org_id", "pk"))

    def org_info(plan: OrgPlan) -> OrgInfo:
        return OrgInfo(
            pk=pks[plan.org_id],
            org_id=plan.org_id,
            jobs=plan.jobs,
            role=plan.role,
            api_key_plaintexts=[plan.key_plaintext(k) for k in range(len(KEY_NAMES))],
        )

    return DatasetInfo(
        jobs=spec.jobs,
        organisations=spec.organisations,
        keys_per_org=spec.keys_per_org,
        months=months,
        big=org_info(plans[0]),
        small=org_info(plans[3]),
        cold_recompute_seconds=marker.get("cold_recompute_seconds"),
        generated_at=marker["generated_at"],
    )


# --- JSON Lines for the import benchmark ---------------------------------------------------------


def jsonl_line(row: JobRow, plan_by_index: dict[int, OrgPlan]) -> str:
    return json.dumps(
        {
            "org_id": plan_by_index[row.org_index].org_id,
            "external_id": row.external_id,
            "api_key": None if row.key_index is None else KEY_NAMES[row.key_index],
            "created_at": row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "language": row.language,
            "audio_duration_seconds": row.audio_duration_seconds,
            "status": row.status,
            "has_transcript": row.has_transcript,
            "has_lrc": row.has_lrc,
            "transcription_tokens": row.transcription_tokens,
            "note_tokens": row.note_tokens,
        },
        separators=(",", ":"),
    )
