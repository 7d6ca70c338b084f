"""Adapters that run the stand-alone benchmark scripts in a child process and read their figures.

``page_render.py`` and ``admin_changelist.py`` are complete programs of their own (each with its
options, see their docstrings); the harness runs them as they are and turns the lines they print
into ``Figure`` rows, so there is one way to run each measurement.
"""

import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from .common import Context, Figure

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


def _database_beside(context: Context, suffix: str) -> str:
    """A database of its own for a script, next to the harness's (name keeps 'bench')."""
    if context.vendor == "sqlite":
        return f"sqlite:///{context.data_dir / f'{suffix}.sqlite3'}"
    parsed = urlparse(context.database_url)
    return urlunparse(parsed._replace(path=f"{parsed.path}_{suffix}"))


def _run(context: Context, script: str, args: list[str], env: dict[str, str], timeout: int) -> str:
    result = subprocess.run(
        [context.python, str(BENCH_DIR / script), *args],
        cwd=ROOT,
        env=context.subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    print(output, flush=True)
    return output


def _unavailable(name: str, budget: str, output: str) -> list[Figure]:
    tail = output.strip().splitlines()[-1] if output.strip() else "no output"
    return [Figure(name=name, value=None, budget=budget, note=f"could not read the figure: {tail[:120]}")]


def run_page_render(context: Context) -> list[Figure]:
    """Server render of the usage page for 24 months and 20 keys."""
    name, budget = "usage page render, 24 months × 20 keys (median)", "≤ 50 ms"
    env = {"BENCH_DATABASE_URL": _database_beside(context, "pages")} if context.vendor == "postgresql" else {}
    output = _run(context, "page_render.py", ["--renders", "200"], env, timeout=900)
    page = re.search(r"usage page: median ([0-9.]+) ms, p95 ([0-9.]+) ms.*?(\d+) queries", output)
    csv = re.search(r"usage CSV\s*: median ([0-9.]+) ms", output)
    if not page:
        return _unavailable(name, budget, output)
    value = float(page.group(1))
    note = f"p95 {page.group(2)} ms, {page.group(3)} queries"
    if csv:
        note += f"; CSV median {csv.group(1)} ms"
    return [Figure(name=name, value=value, unit="ms", budget=budget, passed=value <= 50, note=note, group="pages")]


def run_admin_changelist(context: Context) -> list[Figure]:
    """The admin Job changelist's first page with 1,000,000 jobs (PostgreSQL)."""
    budget = "≤ 300 ms on PostgreSQL"
    if context.vendor != "postgresql":
        return [
            Figure(
                name="admin Job changelist, first page at 1M jobs (median)",
                value=None,
                budget=budget,
                note="n/a: measured by make bench-pg",
            )
        ]
    output = _run(
        context,
        "admin_changelist.py",
        ["--runs", "15"],
        {"BENCH_DATABASE_URL": _database_beside(context, "admin")},
        timeout=1800,
    )
    figures = []
    for line in output.splitlines():
        match = re.match(r"(.+?)\s+([0-9.]+)ms\s+([0-9.]+)ms\s+([0-9.]+)ms.*(within|OVER) 300 ms budget", line)
        if match:
            value = float(match.group(2))
            figures.append(
                Figure(
                    name=f"admin {match.group(1).strip()} (median)",
                    value=value,
                    unit="ms",
                    budget=budget,
                    passed=value <= 300,
                    note=f"min {match.group(3)} ms, max {match.group(4)} ms",
                    group="admin",
                )
            )
    return figures or _unavailable("admin Job changelist, first page at 1M jobs (median)", budget, output)
