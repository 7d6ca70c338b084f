#!/usr/bin/env python
"""Measure every performance budget of the Usage Portal and print one table.

    make bench                      # SQLite (bench/data/bench-1m.sqlite3)
    make bench-pg                   # PostgreSQL (BENCH_DATABASE_URL or the local usage_portal_bench)
    bench/run.py --scale small      # a quick run on 50,000 jobs
    bench/run.py --only report      # one benchmark (see --list)

The data set is generated on the first run and reused until its parameters change; see
bench/README.md for what each figure means.

(Long because it is the registry and the table printer of every benchmark; each benchmark lives in
its own module.)
"""

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, this folder would come first on sys.path and its modules could shadow others.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.chdir(REPO)

from bench.common import DATA_DIR, RESULTS_DIR, Context, Figure, log  # noqa: E402

SCALES = {"full": 1_000_000, "small": 50_000}
DEFAULT_REPEAT = 3


@dataclass(frozen=True)
class Benchmark:
    """An entry of the registry: ``module.function(context) -> list[Figure]``.

    A module that does not exist yet, or a benchmark whose budget belongs to another vendor
    (``vendors``), shows its ``placeholders`` (figure name, budget) as "n/a".
    """

    name: str
    module: str
    function: str = "run"
    needs_dataset: bool = True
    placeholders: tuple[tuple[str, str], ...] = ()
    vendors: tuple[str, ...] = ("sqlite", "postgresql")
    # False: run only when named with --only (a benchmark too long for every run, e.g. the soak).
    default: bool = True


REGISTRY = (
    Benchmark(
        "import",
        "bench.engine",
        "run_import",
        needs_dataset=False,
        # The import budgets are SQLite's (issue 2): `make bench` measures them.
        vendors=("sqlite",),
        placeholders=(
            ("import_jobs 200,000 lines into SQLite", "≥ 20,000 jobs/s"),
            ("import_jobs 1,000,000 lines: peak RSS", "< 300 MB"),
        ),
    ),
    Benchmark("recompute", "bench.engine", "run_recompute"),
    Benchmark("report", "bench.engine", "run_report"),
    Benchmark("scaling", "bench.engine", "run_scaling"),
    Benchmark(
        "api",
        "bench.api_throughput",
        # The HTTP budgets are PostgreSQL's with a Redis cache (issue 13): `make bench-pg` measures them.
        vendors=("postgresql",),
        placeholders=(
            ("ping ÷ anchor, req/s (#13)", "≥ 0.8×"),
            ("/usage ÷ anchor, req/s (#13)", "≥ 0.7×"),
            ("/usage ÷ anchor, p99 (#13)", "≤ 3.0×"),
            ("/usage ÷ ping, req/s (#4)", "≥ 0.7×"),
        ),
    ),
    Benchmark(
        "ingest",
        "bench.ingest",
        # Ingestion and webhooks through gunicorn, PostgreSQL and Redis (issues 14 and 17).
        vendors=("postgresql",),
        placeholders=(
            ("ingest ÷ import_jobs, jobs/s (#14)", "≥ 0.5×"),
            ("replay ÷ first ingest, jobs/s (#14)", "≥ 2.0×"),
            ("1-item POST ÷ ping, median latency (#14)", "≤ 3.0×"),
            ("webhooks cost on import_jobs throughput (#17)", "≤ 10%"),
            ("webhooks cost on ingest throughput (#17)", "≤ 10%"),
            ("delivery drain ÷ plain POSTs, time (#17)", "≤ 2.0×"),
        ),
    ),
    Benchmark(
        "page_render",
        "bench.external",
        "run_page_render",
        needs_dataset=False,
        placeholders=(("usage page render, 24 months × 20 keys (median)", "≤ 50 ms"),),
    ),
    Benchmark(
        "jobs_api",
        "bench.customer_jobs",
        "run_jobs_api",
        placeholders=(("GET /api/v1/jobs limit=100: last ÷ first page (median)", "≤ 1.5×"),),
    ),
    Benchmark(
        "jobs_csv_memory",
        "bench.customer_jobs",
        "run_jobs_csv_memory",
        placeholders=(("jobs CSV of the largest month: peak RSS growth of the serving worker", "< 50 MB"),),
    ),
    Benchmark(
        "daily_page",
        "bench.customer_jobs",
        "run_daily_page",
        placeholders=(
            ("usage page with the daily view, largest month: big ÷ 1,000-job org (median)", "≤ 1.5×"),
        ),
    ),
    Benchmark(
        "admin_changelist",
        "bench.external",
        "run_admin_changelist",
        needs_dataset=False,
        vendors=("postgresql",),
        placeholders=(("admin Job changelist, first page at 1M jobs (median)", "≤ 300 ms on PostgreSQL"),),
    ),
    # Ten minutes of mixed load (issue 12): only with `--only soak`, never in the default set.
    Benchmark("soak", "bench.soak", vendors=("postgresql",), default=False),
)


def load(benchmark: Benchmark):
    """The benchmark's function, or None when its module is not there (yet)."""
    try:
        module = importlib.import_module(benchmark.module)
    except ModuleNotFoundError as exc:
        if exc.name == benchmark.module:
            return None
        raise
    return getattr(module, benchmark.function)


# --- Databases ----------------------------------------------------------------------------------


def label(jobs: int) -> str:
    return f"{jobs // 1_000_000}m" if jobs >= 1_000_000 else f"{jobs // 1000}k"


def configure_database(database: str, jobs: int) -> str:
    """Point this process (DATABASE_URL) at the benchmark database for a data set of ``jobs``.

    SQLite: one file per data set size under bench/data/. PostgreSQL: the given database (created
    if missing), the 1M data set in its ``public`` schema and the others in ``bench_<size>`` schemas.
    """
    if database == "sqlite":
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{DATA_DIR / f'bench-{label(jobs)}.sqlite3'}"
    else:
        url = database
        _create_postgresql_database(url)
        if jobs != SCALES["full"]:
            schema = f"bench_{label(jobs)}"
            _create_postgresql_schema(url, schema)
            separator = "&" if "?" in url else "?"
            url += separator + "options=" + urllib.parse.quote(f"-c search_path={schema}")
    os.environ["DATABASE_URL"] = url
    production_like_environment()
    return url


BENCH_SECRET_KEY = "bench-only-secret-key-not-for-production-0123456789abcdefghijklmnop"


def production_like_environment() -> None:
    """Measure what production runs: DEBUG off (no per-query logging), hence a real SECRET_KEY.

    With DEBUG on, Django records every query and, on SQLite, re-quotes every parameter of every
    statement for that record (an extra SELECT QUOTE(?)… per batch), which would inflate every
    figure. Children (manage.py, gunicorn) inherit this environment.
    """
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ.setdefault("DEBUG", "False")
    os.environ.setdefault("SECRET_KEY", BENCH_SECRET_KEY)


def _postgresql_params(url: str) -> dict:
    import environ

    config = environ.Env.db_url_config(url)
    if "postgresql" not in config["ENGINE"]:
        raise SystemExit(f"--database must be 'sqlite' or a PostgreSQL URL, not {url!r}")
    if "bench" not in config["NAME"]:
        # The data set generator drops and recreates schemas: never aim it at a real database.
        raise SystemExit(f"refusing to use database {config['NAME']!r}: its name must contain 'bench'")
    return {
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
        "dbname": config["NAME"],
    }


def _create_postgresql_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    params = _postgresql_params(url)
    name = params.pop("dbname")
    with psycopg.connect(**params, dbname="postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            log(f"creating database {name}")
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _create_postgresql_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(**_postgresql_params(url), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def vendor_info() -> tuple[str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
        else:
            cursor.execute("SELECT sqlite_version()")
        return connection.vendor, cursor.fetchone()[0].split()[0]


# --- The machine --------------------------------------------------------------------------------


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory_gib = round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": commit,
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }


# --- Output -------------------------------------------------------------------------------------


def format_value(figure: Figure) -> str:
    if figure.value is None:
        return "—"
    value = figure.value
    if figure.unit == "×":
        return f"{value:.2f}×"
    if figure.unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if figure.unit in ("ms", "MB"):
        return f"{value:,.2f} {figure.unit}" if value < 100 else f"{value:,.0f} {figure.unit}"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f} {figure.unit}".strip()
    return f"{value:,.0f} {figure.unit}".strip()


def result_text(figure: Figure) -> str:
    if figure.value is None:
        return "ERROR" if figure.passed is False else "n/a"
    if figure.passed is None:
        return "info" if not figure.budget else "—"
    return "PASS" if figure.passed else "FAIL"


def format_table(figures: list[Figure]) -> str:
    header = ("figure", "value", "budget", "result", "notes")
    rows = [(f.name, format_value(f), f.budget, result_text(f), f.note) for f in figures]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

    def line(row):
        return (
            " | ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
            + " | "
            + row[4]
        )

    out = [line(header), "-+-".join("-" * w for w in widths) + "-+-" + "-" * 20]
    group = None
    for figure, row in zip(figures, rows, strict=True):
        if group is not None and figure.group != group:
            out.append("")
        group = figure.group
        out.append(line(row))
    return "\n".join(out)


def results_path(vendor: str, scale: str, only: list[str] | None) -> Path:
    name = f"latest-{vendor}"
    if scale != "full":
        name += f"-{scale}"
    if only:
        name += "-only-" + "-".join(only)
    return RESULTS_DIR / f"{name}.json"


# --- Entry points -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database",
        default="sqlite",
        help="'sqlite' (default; a file under bench/data/) or a PostgreSQL URL whose database name contains 'bench'",
    )
    parser.add_argument(
        "--scale", choices=sorted(SCALES), default="full", help="full: 1M jobs; small: 50k jobs"
    )
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this benchmark (repeatable; see --list)"
    )
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="timed rounds of the slow figures")
    parser.add_argument(
        "--list", action="store_true", help="list the benchmarks and whether they are available"
    )
    parser.add_argument("--internal", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def internal(args: argparse.Namespace) -> int:
    """Work done in a child process with its own database settings."""
    import django

    if args.internal == "import-template":
        out = Path(args.out)
        os.environ["DATABASE_URL"] = f"sqlite:///{out}"
        production_like_environment()
        django.setup()
        from bench.engine import build_import_template

        build_import_template(jobs=args.jobs, out=out)
        return 0
    if args.internal == "scaling-point":
        configure_database(args.database, args.jobs)
        django.setup()
        from bench.dataset import DatasetSpec, ensure_dataset
        from bench.engine import measure_point

        dataset = ensure_dataset(DatasetSpec.for_jobs(args.jobs))
        log(f"scaling point {args.jobs:,} jobs: measuring")
        Path(args.out).write_text(json.dumps(measure_point(dataset=dataset, repeat=args.repeat)))
        return 0
    raise SystemExit(f"unknown internal task {args.internal!r}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.internal:
        return internal(args)
    known = {benchmark.name for benchmark in REGISTRY}
    unknown = set(args.only or []) - known
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    selected = [
        benchmark
        for benchmark in REGISTRY
        if (benchmark.name in args.only if args.only else benchmark.default)
    ]
    jobs = SCALES[args.scale]
    url = configure_database(args.database, jobs)

    import django

    django.setup()
    functions = {benchmark.name: load(benchmark) for benchmark in selected}
    if args.list:
        for benchmark in REGISTRY:
            available = "available" if load(benchmark) else "not available"
            target = f"{benchmark.module}.{benchmark.function}"
            print(f"{benchmark.name:18} {target:30} {available}")
        return 0

    from bench.dataset import DatasetSpec, ensure_dataset

    started = time.perf_counter()
    vendor, version = vendor_info()
    machine = machine_info()
    log(f"{vendor} {version}, {machine['cores']} cores, scale {args.scale} ({jobs:,} jobs)")
    needs_dataset = any(
        benchmark.needs_dataset and functions[benchmark.name] and vendor in benchmark.vendors
        for benchmark in selected
    )
    if any(functions[b.name] for b in selected if b.module != "bench.engine"):
        from django.conf import settings
        from django.core.management import call_command

        if not settings.DEBUG:  # pages and the admin need the static manifest with DEBUG off
            call_command("collectstatic", interactive=False, verbosity=0)
    dataset = ensure_dataset(DatasetSpec.for_jobs(jobs)) if needs_dataset else None
    context = Context(
        vendor=vendor,
        vendor_version=version,
        database_url=url,
        database_arg=args.database,
        scale=args.scale,
        dataset=dataset,
        repeat=max(1, args.repeat),
        quick=args.scale != "full",
    )
    figures: list[Figure] = []
    for benchmark in selected:
        function = functions[benchmark.name]
        if function is None or vendor not in benchmark.vendors:
            command = "make bench" if "sqlite" in benchmark.vendors else "make bench-pg"
            note = (
                f"{benchmark.module} not present"
                if function is None
                else f"a {'/'.join(benchmark.vendors)} budget: measured by `{command}`"
            )
            figures.extend(
                Figure(name, None, budget=budget, note=note, group=benchmark.name)
                for name, budget in benchmark.placeholders
            )
            continue
        log(f"running {benchmark.name}")
        benchmark_started = time.perf_counter()
        try:
            produced = list(function(context))
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            produced = [Figure(f"{benchmark.name}", None, passed=False, note=f"error: {exc}"[:200])]
        for figure in produced:
            figure.group = figure.group or benchmark.name
        figures.extend(produced)
        log(f"  {benchmark.name} took {time.perf_counter() - benchmark_started:.0f} s")

    title = (
        f"Usage Portal benchmarks: {vendor} {version}; "
        + (f"{dataset.jobs:,} jobs, {dataset.organisations:,} organisations, " if dataset else "")
        + f"scale {args.scale}"
    )
    machine_line = (
        f"machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB RAM, "
        f"{machine['os']}, Python {machine['python']}; commit {machine['commit']}; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {time.perf_counter() - started:.0f} s; "
        f"load average {machine['load_average_at_start'][0]:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    )
    print()
    print(title)
    print(machine_line)
    print()
    print(format_table(figures))
    scaling = context.shared.get("scaling")
    if scaling:
        from bench.engine import format_scaling

        print()
        print(f"Scaling ({vendor}; medians; the report reads 12 months)")
        print(format_scaling(scaling))

    failed = [figure for figure in figures if figure.passed is False]
    print()
    print(f"{len(failed)} budget(s) failed" if failed else "every measured budget passed")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = results_path(vendor, args.scale, args.only)
    path.write_text(
        json.dumps(
            {
                "title": title,
                "machine": machine,
                "vendor": vendor,
                "vendor_version": version,
                "scale": args.scale,
                "dataset": None
                if dataset is None
                else {
                    "jobs": dataset.jobs,
                    "organisations": dataset.organisations,
                    "keys_per_org": dataset.keys_per_org,
                    "months": [dataset.months[0], dataset.months[-1]],
                    "largest_org_jobs": dataset.big.jobs,
                    "generated_at": dataset.generated_at,
                },
                "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "seconds": round(time.perf_counter() - started, 1),
                "figures": [figure.to_json() for figure in figures],
                "scaling": scaling,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    log(f"wrote {path.relative_to(REPO)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
