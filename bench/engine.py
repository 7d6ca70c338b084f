"""Benchmarks of the usage engine: import, recompute, report, and how they scale.

(Long because the import, recompute, report and scaling benchmarks share their set-up and timing
helpers.)
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    REPO,
    Context,
    Figure,
    at_least,
    at_most,
    fmt_seconds,
    interleaved,
    log,
    median,
    progress_bar,
    spread,
)

GROUP_BY_SQL = (
    "SELECT organisation_id, month, COUNT(*), SUM(transcription_tokens), SUM(note_tokens) "
    "FROM usage_job GROUP BY 1, 2"
)
RECOMPUTE_RATIO_BUDGET = 2.0
REPORT_RATIO_BUDGET = 1.5
IMPORT_RATE_BUDGET = 20_000
IMPORT_RSS_BUDGET_MB = 300
IMPORT_TIME_CAP_S = 150  # stop repeating the throughput import once it has taken this long
IMPORT_RSS_TIME_CAP_S = 900  # the memory run is stopped after this (the figure then says so)


# --- import_jobs --------------------------------------------------------------------------------


def _import_sizes(context: Context) -> tuple[int, int]:
    """(lines of the throughput file, lines of the memory file)."""
    return (40_000, 200_000) if context.quick else (200_000, 1_000_000)


def _import_dir(context: Context) -> Path:
    """One folder per data set of the import benchmark (its files must not mix)."""
    path = context.data_dir / "import" / f"{_import_sizes(context)[1] // 1000}k"
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_import_files(context: Context) -> tuple[Path, Path]:
    """JSON Lines files of the data set's jobs: the whole stream, and every fifth line of it."""
    from bench.dataset import DatasetSpec, default_end_month, job_rows, jsonl_line, plan_organisations

    rate_lines, memory_lines = _import_sizes(context)
    spec = DatasetSpec.for_jobs(memory_lines)
    folder = _import_dir(context)
    rate_file, memory_file = folder / f"jobs-{rate_lines}.jsonl", folder / f"jobs-{memory_lines}.jsonl"
    marker_file = folder / "jobs.marker.json"
    identity = spec.identity()
    files_exist = marker_file.exists() and rate_file.exists() and memory_file.exists()
    if files_exist and json.loads(marker_file.read_text()).get("identity") == identity:
        return rate_file, memory_file
    log(f"writing {memory_file.name} and {rate_file.name}")
    plans = plan_organisations(spec)
    by_index = {plan.index: plan for plan in plans}
    bar = progress_bar(total=memory_lines, desc="write JSON Lines", unit="line")
    end_month = default_end_month()
    with (
        open(memory_file, "w", encoding="utf-8") as everything,
        open(rate_file, "w", encoding="utf-8") as sample,
    ):
        for number, row in enumerate(job_rows(spec, plans, end_month)):
            line = jsonl_line(row, by_index) + "\n"
            everything.write(line)
            if number % (memory_lines // rate_lines) == 0:
                sample.write(line)
            if number % 10_000 == 0:
                bar.update(10_000 if number else 0)
    bar.close()
    marker_file.write_text(json.dumps({"identity": identity, "end_month": end_month.isoformat()}))
    return rate_file, memory_file


def ensure_import_template(context: Context) -> Path:
    """A migrated SQLite database holding the data set's organisations and keys, but no jobs."""
    _, memory_lines = _import_sizes(context)
    template = _import_dir(context) / "template.sqlite3"
    result = _run_internal(["import-template", "--jobs", str(memory_lines), "--out", str(template)])
    if result.returncode != 0:
        raise RuntimeError(f"building the import template failed: {result.stderr[-2000:]}")
    return template


def build_import_template(*, jobs: int, out: Path) -> None:
    """(In a child process set up on ``out``.) Create the template unless its marker matches."""
    from django.core.management import call_command
    from django.db import connection

    from bench.dataset import (
        DatasetSpec,
        _full_identity,
        _secret_fingerprint,
        create_organisations,
        plan_organisations,
    )

    spec = DatasetSpec.for_jobs(jobs)
    marker_file = out.with_suffix(".marker.json")
    identity = _full_identity(spec) | {"secret_key": _secret_fingerprint()}
    if out.exists() and marker_file.exists() and json.loads(marker_file.read_text()) == identity:
        return
    log(f"building the import template {out.name}")
    connection.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    call_command("migrate", verbosity=0, interactive=False)
    create_organisations(plan_organisations(spec))
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    marker_file.write_text(json.dumps(identity))


def _run_import(template: Path, jsonl: Path, *, time_cap: float | None = None) -> tuple[float, float, str]:
    """Run ``manage.py import_jobs`` on a fresh copy of the template, in a child process.

    Returns (wall seconds, peak RSS in MB of that process, its stdout). With ``time_cap``, a run
    still going after that many seconds is stopped; its stdout then starts with "stopped".
    """
    with tempfile.TemporaryDirectory(dir=template.parent) as scratch:
        database = Path(scratch) / "import.sqlite3"
        shutil.copyfile(template, database)
        env = dict(os.environ, DATABASE_URL=f"sqlite:///{database}")
        with open(Path(scratch) / "out", "w+") as out, open(Path(scratch) / "err", "w+") as err:
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "manage.py", "import_jobs", str(jsonl)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
            stopped = False
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time_cap is not None and time.perf_counter() - started > time_cap and not stopped:
                    peak_so_far = _peak_rss_mb(process.pid)
                    process.terminate()
                    stopped = True
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
    peak = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    if stopped:
        return elapsed, max(peak, peak_so_far), f"stopped after {time_cap:.0f} s"
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code != 0:
        raise RuntimeError(f"import_jobs failed ({exit_code}): {stderr[-2000:]}")
    return elapsed, peak, stdout.strip()


def _peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a running process, in MB; 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def run_import(context: Context) -> list[Figure]:
    """`manage.py import_jobs` into a fresh SQLite database: throughput and peak memory."""
    rate_file, memory_file = ensure_import_files(context)
    template = ensure_import_template(context)
    rate_lines, memory_lines = _import_sizes(context)
    repeat = max(3, min(context.repeat, 5))
    seconds = []
    for attempt in range(repeat):
        elapsed, _, output = _run_import(template, rate_file)
        log(f"  import {rate_lines:,} lines, run {attempt + 1}/{repeat}: {elapsed:.2f} s ({output})")
        seconds.append(elapsed)
        if sum(seconds) > IMPORT_TIME_CAP_S:  # keep the whole run bounded while imports are slow
            break
    rate = rate_lines / median(seconds)
    elapsed, rss_mb, output = _run_import(template, memory_file, time_cap=IMPORT_RSS_TIME_CAP_S)
    log(f"  import {memory_lines:,} lines: {elapsed:.1f} s, peak RSS {rss_mb:.0f} MB ({output})")
    finished = not output.startswith("stopped")
    return [
        Figure(
            f"import_jobs {rate_lines:,} lines into SQLite (whole command)",
            round(rate),
            "jobs/s",
            f"≥ {IMPORT_RATE_BUDGET:,} jobs/s",
            at_least(rate, IMPORT_RATE_BUDGET),
            f"median {median(seconds):.2f} s ({spread(seconds)})",
        ),
        Figure(
            f"import_jobs {memory_lines:,} lines: peak RSS",
            round(rss_mb, 1),
            "MB",
            f"< {IMPORT_RSS_BUDGET_MB} MB",
            (rss_mb < IMPORT_RSS_BUDGET_MB)
            if finished
            else (False if rss_mb >= IMPORT_RSS_BUDGET_MB else None),
            f"{elapsed:.1f} s, {memory_lines / elapsed:,.0f} jobs/s"
            if finished
            else f"INCOMPLETE: {output}; the peak so far is shown, the run did not reach the end",
        ),
    ]


# --- recompute ----------------------------------------------------------------------------------


def _group_by() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(GROUP_BY_SQL)
        return len(cursor.fetchall())


def _empty_aggregates() -> None:
    from usage.models import LanguageUsage, MonthlyUsage

    MonthlyUsage.objects.all().delete()
    LanguageUsage.objects.all().delete()


def _settle_aggregates() -> None:
    """Vacuum the aggregate tables, as autovacuum would after the previous round rewrote them all:
    a steady-state reconcile should not be timed scanning 250k dead rows left by that round."""
    from django.db import connection

    from usage.models import LanguageUsage, MonthlyUsage

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (MonthlyUsage, LanguageUsage):
                cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(model._meta.db_table)}")


def measure_recompute(*, repeat: int) -> dict:
    """Median seconds of the bare GROUP BY and of the full recompute, side by side."""
    from usage.engine.recompute import usage_recompute

    corrections = []

    def steady():
        corrections.append(usage_recompute().rows_corrected)

    samples = interleaved(
        {"group_by": _group_by, "recompute": steady, "recompute_empty": usage_recompute},
        repeat=repeat,
        warmup=0,
        setup={"recompute": _settle_aggregates, "recompute_empty": _empty_aggregates},
    )
    return {
        "samples": samples,
        "group_by": median(samples["group_by"]),
        "recompute": median(samples["recompute"]),
        "recompute_empty": median(samples["recompute_empty"]),
        "steady_corrections": max(corrections),
    }


def run_recompute(context: Context) -> list[Figure]:
    """Full ``usage_recompute()`` vs a bare GROUP BY organisation, month over the same table."""
    from usage.models import LanguageUsage, MonthlyUsage

    repeat = context.repeat
    log(f"  recompute: {repeat} rounds of GROUP BY / recompute / recompute from empty aggregates")
    measured = measure_recompute(repeat=repeat)
    context.shared["recompute"] = measured
    samples = measured["samples"]
    pg = context.vendor == "postgresql"
    budget = f"≤ {RECOMPUTE_RATIO_BUDGET:.1f}×" + ("" if pg else " on PostgreSQL")
    steady_ratio = measured["recompute"] / measured["group_by"]
    empty_ratio = measured["recompute_empty"] / measured["group_by"]
    rows = MonthlyUsage.objects.count(), LanguageUsage.objects.count()
    figures = [
        Figure(
            f"bare GROUP BY organisation, month ({context.dataset.jobs:,} jobs)",
            round(measured["group_by"], 3),
            "s",
            note=spread(samples["group_by"]),
        ),
        Figure(
            "usage_recompute(), aggregates present",
            round(measured["recompute"], 3),
            "s",
            note=f"{spread(samples['recompute'])}; rows corrected {measured['steady_corrections']}",
        ),
        Figure(
            "recompute ÷ GROUP BY (aggregates present)",
            round(steady_ratio, 2),
            "×",
            budget,
            at_most(steady_ratio, RECOMPUTE_RATIO_BUDGET) if pg else None,
        ),
        Figure(
            "usage_recompute(), from empty aggregates",
            round(measured["recompute_empty"], 3),
            "s",
            note=f"{spread(samples['recompute_empty'])}; writes {rows[0]:,} + {rows[1]:,} rows",
        ),
        # Not the budgeted case: a first build writes every aggregate row (the bare GROUP BY writes
        # nothing), so its ratio is shown for information only.
        Figure(
            "recompute ÷ GROUP BY (from empty aggregates: a first build)",
            round(empty_ratio, 2),
            "×",
            note="information: the budget is the reconcile of existing aggregates (above)",
        ),
    ]
    if context.dataset.cold_recompute_seconds is not None:
        figures.append(
            Figure(
                "first recompute after bulk load (tiers + free flags + aggregates)",
                round(context.dataset.cold_recompute_seconds, 2),
                "s",
                note=f"once, at generation ({context.dataset.generated_at})",
            )
        )
    return figures


# --- report -------------------------------------------------------------------------------------


def measure_report(*, big_pk: int, small_pk: int, months: tuple[str, str], repeat: int) -> dict:
    """Median seconds of ``usage_report`` over ``months`` for two organisations, taking turns."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import Organisation
    from usage.months import parse_month
    from usage.selectors import usage_report

    start, end = parse_month(months[0]), parse_month(months[1])
    organisations = {
        "big": Organisation.objects.get(pk=big_pk),
        "small": Organisation.objects.get(pk=small_pk),
    }
    calls = {
        name: (lambda org=org: usage_report(organisation=org, start_month=start, end_month=end))
        for name, org in organisations.items()
    }
    shape = {}
    for name, call in calls.items():
        with CaptureQueriesContext(connection) as queries:
            report = call()
        shape[name] = {"queries": len(queries), "jobs": report.totals.jobs, "keys": len(report.keys)}
    samples = interleaved(calls, repeat=repeat, warmup=3)
    return {
        "samples": samples,
        "big": median(samples["big"]),
        "small": median(samples["small"]),
        "shape": shape,
    }


def run_report(context: Context) -> list[Figure]:
    """``usage_report`` for 12 months: the largest organisation vs the 1,000-job one."""
    dataset = context.dataset
    repeat = max(30, context.repeat * 10)
    measured = measure_report(
        big_pk=dataset.big.pk, small_pk=dataset.small.pk, months=dataset.report_months, repeat=repeat
    )
    context.shared["report"] = measured
    ratio = measured["big"] / measured["small"]
    shape = measured["shape"]
    months = f"{dataset.report_months[0]}..{dataset.report_months[1]}"
    return [
        Figure(
            f"usage_report 12 months, {dataset.big.org_id} ({dataset.big.jobs:,} jobs all time)",
            round(measured["big"] * 1000, 2),
            "ms",
            note=f"{shape['big']['jobs']:,} jobs in {months}, {shape['big']['keys']} keys, "
            f"{shape['big']['queries']} queries; {spread(measured['samples']['big'])}",
        ),
        Figure(
            f"usage_report 12 months, {dataset.small.org_id} ({dataset.small.jobs:,} jobs all time)",
            round(measured["small"] * 1000, 2),
            "ms",
            note=f"{shape['small']['jobs']:,} jobs in {months}, {shape['small']['keys']} keys, "
            f"{shape['small']['queries']} queries; {spread(measured['samples']['small'])}",
        ),
        Figure(
            "report latency ratio, large ÷ small organisation",
            round(ratio, 2),
            "×",
            f"≤ {REPORT_RATIO_BUDGET:.1f}×",
            at_most(ratio, REPORT_RATIO_BUDGET),
        ),
    ]


# --- scaling ------------------------------------------------------------------------------------


def scaling_sizes(context: Context) -> list[int]:
    return [10_000, context.dataset.jobs] if context.quick else [10_000, 100_000, context.dataset.jobs]


def measure_point(*, dataset, repeat: int) -> dict:
    """The figures of one point of the scaling curve, on the current database."""
    recompute = measure_recompute(repeat=repeat)
    report = measure_report(
        big_pk=dataset.big.pk,
        small_pk=dataset.small.pk,
        months=dataset.report_months,
        repeat=max(20, repeat * 5),
    )
    return _point(dataset, recompute, report)


def _point(dataset, recompute: dict, report: dict) -> dict:
    return {
        "jobs": dataset.jobs,
        "organisations": dataset.organisations,
        "largest_org_jobs": dataset.big.jobs,
        "group_by_s": recompute["group_by"],
        "recompute_s": recompute["recompute"],
        "recompute_empty_s": recompute["recompute_empty"],
        "report_largest_ms": report["big"] * 1000,
        "report_small_ms": report["small"] * 1000,
    }


def run_scaling(context: Context) -> list[Figure]:
    """Report latency and recompute time at 10k, 100k and 1M jobs (each its own data set)."""
    points = []
    for jobs in scaling_sizes(context):
        if jobs == context.dataset.jobs:
            recompute = context.shared.get("recompute") or measure_recompute(repeat=context.repeat)
            report = context.shared.get("report")
            if report is None:
                dataset = context.dataset
                report = measure_report(
                    big_pk=dataset.big.pk, small_pk=dataset.small.pk, months=dataset.report_months, repeat=30
                )
            points.append(_point(context.dataset, recompute, report))
            continue
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            result = _run_internal(
                [
                    "scaling-point",
                    "--jobs",
                    str(jobs),
                    "--database",
                    context.database_arg,
                    "--repeat",
                    str(max(3, context.repeat)),
                    "--out",
                    out.name,
                ],
                capture=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"scaling point {jobs:,} failed (exit {result.returncode})")
            points.append(json.loads(Path(out.name).read_text()))
    points.sort(key=lambda point: point["jobs"])
    context.shared["scaling"] = points
    plot = _plot(context, points)
    first, last = points[0], points[-1]
    growth = last["jobs"] / first["jobs"]
    return [
        Figure(
            f"recompute time growth {first['jobs']:,} → {last['jobs']:,} jobs (×{growth:,.0f} jobs)",
            round(last["recompute_s"] / first["recompute_s"], 1),
            "×",
            note="see the scaling table",
        ),
        Figure(
            f"report latency growth, largest org {first['largest_org_jobs']:,} → {last['largest_org_jobs']:,} jobs",
            round(last["report_largest_ms"] / first["report_largest_ms"], 2),
            "×",
            note=f"plot: {plot.relative_to(REPO)}" if plot else "plot: matplotlib not installed",
        ),
    ]


def format_scaling(points: list[dict]) -> str:
    header = (
        "jobs",
        "orgs",
        "largest org",
        "GROUP BY",
        "recompute",
        "recompute (empty)",
        "report largest",
        "report 1k",
    )
    rows = [
        (
            f"{p['jobs']:,}",
            f"{p['organisations']:,}",
            f"{p['largest_org_jobs']:,}",
            fmt_seconds(p["group_by_s"]),
            fmt_seconds(p["recompute_s"]),
            fmt_seconds(p["recompute_empty_s"]),
            f"{p['report_largest_ms']:.2f} ms",
            f"{p['report_small_ms']:.2f} ms",
        )
        for p in points
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        " | ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _plot(context: Context, points: list[dict]) -> Path | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    jobs = [p["jobs"] for p in points]
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4))
    left.plot(jobs, [p["group_by_s"] for p in points], "o-", label="bare GROUP BY org, month")
    left.plot(jobs, [p["recompute_s"] for p in points], "o-", label="recompute, aggregates present")
    left.plot(jobs, [p["recompute_empty_s"] for p in points], "o-", label="recompute, empty aggregates")
    left.set(xscale="log", yscale="log", xlabel="jobs in the table", ylabel="seconds", title="Full recompute")
    left.legend(fontsize=8)
    right.plot(
        jobs, [p["report_largest_ms"] for p in points], "o-", label="largest organisation (20 % of jobs)"
    )
    right.plot(jobs, [p["report_small_ms"] for p in points], "o-", label="1,000-job organisation")
    right.set(
        xscale="log", xlabel="jobs in the table", ylabel="milliseconds", title="usage_report, 12 months"
    )
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    figure.suptitle(
        f"Usage Portal scaling on {context.vendor} {context.vendor_version}, {os.cpu_count()} cores"
    )
    figure.tight_layout()
    context.results_dir.mkdir(parents=True, exist_ok=True)
    path = context.results_dir / f"scaling-{context.vendor}{'-small' if context.quick else ''}.png"
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def _run_internal(arguments: list[str], *, capture: bool = True) -> subprocess.CompletedProcess:
    """Run ``bench/run.py --internal …`` in a child process (its own database settings)."""
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--internal", *arguments],
        cwd=REPO,
        capture_output=capture,
        text=True,
        check=False,
    )
