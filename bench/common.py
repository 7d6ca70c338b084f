"""What every benchmark shares: the ``Figure`` it returns, the ``Context`` it receives, timing.

A benchmark is a function ``run(context: Context) -> list[Figure]``. It may assume Django is set
up on the benchmark database (``context.vendor``) holding the generated data set described by
``context.dataset``; it must leave that data as it found it.
"""

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
DATA_DIR = BENCH_DIR / "data"
RESULTS_DIR = BENCH_DIR / "results"


@dataclass
class Figure:
    """One line of the results table.

    ``value`` is a number in ``unit`` (None when the figure could not be measured). ``budget`` is
    the human-readable limit ("≥ 20,000", "≤ 2.0×"); ``passed`` is True/False against it, or None
    for a figure without a budget (information) or one that is not available.
    """

    name: str
    value: float | None
    unit: str = ""
    budget: str = ""
    passed: bool | None = None
    note: str = ""
    group: str = ""

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def status(self) -> str:
        if self.value is None:
            return self.note or "not available"
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "FAIL"


def at_most(value: float, limit: float) -> bool:
    return value <= limit


def at_least(value: float, limit: float) -> bool:
    return value >= limit


@dataclass
class OrgInfo:
    """A generated organisation a benchmark may read: database pk, public id, job count."""

    pk: int
    org_id: str
    jobs: int
    role: str
    api_key_plaintexts: list[str] = field(default_factory=list, repr=False)


@dataclass
class DatasetInfo:
    """The generated data set in the benchmark database."""

    jobs: int
    organisations: int
    keys_per_org: int
    months: list[str]  # "YYYY-MM", oldest first
    big: OrgInfo  # the largest organisation (~20 % of the jobs)
    small: OrgInfo  # the reference organisation with ~1,000 jobs
    cold_recompute_seconds: float | None = None
    generated_at: str = ""

    @property
    def report_months(self) -> tuple[str, str]:
        """The 12 most recent months of the data set: what the report benchmarks read."""
        return self.months[-12], self.months[-1]


@dataclass
class Context:
    """Everything a benchmark needs: where the data is, how long to try, where to write."""

    vendor: str  # "sqlite" or "postgresql"
    vendor_version: str
    database_url: str  # the DATABASE_URL this process (and its children) use
    database_arg: str  # what ``run.py --database`` was given: "sqlite" or a PostgreSQL URL
    scale: str  # "full" or "small"
    dataset: DatasetInfo | None  # None when no selected benchmark needs the data set
    repeat: int
    quick: bool = False
    results_dir: Path = RESULTS_DIR
    data_dir: Path = DATA_DIR
    shared: dict = field(default_factory=dict)  # figures one benchmark leaves for another

    @property
    def python(self) -> str:
        return sys.executable

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        """The environment for a child process (manage.py, gunicorn) on the same database."""
        env = dict(os.environ)
        env.update({"DATABASE_URL": self.database_url, "DJANGO_SETTINGS_MODULE": "portal.settings"})
        env.update(extra)
        return env

    def log(self, message: str) -> None:
        log(message)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def progress_bar(*, total: int | None, desc: str, unit: str = "job"):
    """A tqdm bar on a terminal; silent when stderr is not one."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        dynamic_ncols=True,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
    )


def timed(function: Callable[[], object]) -> float:
    """Seconds one call of ``function`` takes (monotonic clock)."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved(
    functions: dict[str, Callable[[], object]],
    *,
    repeat: int,
    warmup: int = 0,
    setup: dict[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:
    """Time each function ``repeat`` times, taking turns (A, B, A, B, …) so that a ratio between
    them holds on a noisy machine. ``setup[name]`` runs untimed before each call of ``name``."""
    setup = setup or {}
    for _ in range(warmup):
        for name, function in functions.items():
            if name in setup:
                setup[name]()
            function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeat):
        for name, function in functions.items():
            if name in setup:
                setup[name]()
            samples[name].append(timed(function))
    return samples


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def spread(samples: list[float]) -> str:
    """A short note on the samples behind a median: count and range."""
    if len(samples) < 2:
        return f"n={len(samples)}"
    return f"n={len(samples)}, min {fmt_seconds(min(samples))}, max {fmt_seconds(max(samples))}"


def fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"
