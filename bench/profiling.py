#!/usr/bin/env python
"""Where does the time of a benchmarked operation go? (pyinstrument + a per-query SQL breakdown)

    bench/profiling.py recompute [--database URL] [--scale small]   # one full usage_recompute()
    bench/profiling.py recompute --empty                            # ... from empty aggregates
    bench/profiling.py report                                       # usage_report, largest org
    bench/profiling.py import                                       # import_jobs, throughput file
    bench/profiling.py api --database URL [--path /usage] [--requests 2000]  # API requests, in-process
    bench/profiling.py ingest --database URL [--requests 500]   # ingestion POSTs, in-process

``api`` sends requests with a fresh key of the largest organisation straight to the portal's WSGI
handler (no server, no socket), with the cache at ``BENCH_CACHE_URL`` (default: the HTTP
benchmark's Redis database): it prints the CPU time per request of every API endpoint, then the
call tree of ``--path``. The key and its call counts are deleted afterwards.

``ingest`` does the same for ``POST /api/v1/ingest/jobs`` (PostgreSQL): a first ingestion of
1,000-item batches into a fresh organisation, their replay, and one-item status updates, each
with its time per request beside a ping's; then the call trees of the replay and of the one-item
update. The organisation, its jobs and the keys are deleted afterwards.

Runs on the data set of ``bench/run.py`` (generated if missing). Prints the pyinstrument call
tree, then the SQL statements grouped by shape (time, count), and on PostgreSQL the EXPLAIN
ANALYZE of the slowest SELECTs. Nothing here is part of ``make bench``.
"""

import argparse
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, this folder would come first on sys.path and its modules could shadow others.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.run import SCALES, configure_database  # noqa: E402


def _shape(sql: str) -> str:
    """The statement with its literals and parameter lists folded, to group similar queries."""
    sql = re.sub(r"'[^']*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    sql = re.sub(r"(\?\s*,\s*)+\?", "?…", sql)
    sql = re.sub(r"(\(\?…?\)\s*,\s*)+\(\?…?\)", "(…)…", sql)
    return sql[:220]


def sql_breakdown(queries: list[dict], wall: float, *, top: int = 12) -> str:
    by_shape: dict[str, list[float]] = defaultdict(list)
    for query in queries:
        by_shape[_shape(query["sql"])].append(float(query["time"]))
    total = sum(sum(times) for times in by_shape.values())
    lines = [
        f"wall {wall:.2f} s; {len(queries):,} SQL statements took {total:.2f} s "
        f"({total / wall:.0%}); Python and the driver the other {wall - total:.2f} s",
    ]
    for shape, times in sorted(by_shape.items(), key=lambda item: -sum(item[1]))[:top]:
        lines.append(f"  {sum(times):8.3f} s  ×{len(times):<6,} {shape}")
    return "\n".join(lines)


def explain(queries: list[dict], *, top: int = 3) -> str:
    from django.db import connection

    selects = sorted(
        (q for q in queries if q["sql"].lstrip().upper().startswith("SELECT") and q["params"] is not None),
        key=lambda q: -float(q["time"]),
    )
    out = []
    with connection.cursor() as cursor:
        for query in selects[:top]:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"], query["params"])
            plan = "\n".join("    " + row[0] for row in cursor.fetchall())
            out.append(f"  -- {query['time']:.3f} s: {query['sql'][:300]}\n{plan}")
    return "\n".join(out)


class QueryTimer:
    """Times every statement through ``connection.execute_wrapper`` (no DEBUG query log needed,
    which on SQLite would itself cost a quoting query per statement)."""

    def __init__(self) -> None:
        self.queries: list[dict] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            self.queries.append({"sql": sql, "params": None if many else params, "time": elapsed})


def profiled(function):
    from django.db import connection
    from pyinstrument import Profiler

    timer = QueryTimer()
    profiler = Profiler(interval=0.001)
    with connection.execute_wrapper(timer):
        started = time.perf_counter()
        profiler.start()
        function()
        profiler.stop()
        wall = time.perf_counter() - started
    print(profiler.output_text(unicode=True, color=False))
    return timer.queries, wall


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", choices=["recompute", "report", "import", "api", "ingest"])
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--empty", action="store_true", help="recompute: delete the aggregates first")
    parser.add_argument("--small", action="store_true", help="report: the 1,000-job organisation")
    parser.add_argument("--lines", type=int, help="import: only the first N lines of the throughput file")
    parser.add_argument("--path", default="/usage", help="api: the request whose call tree is printed")
    parser.add_argument("--requests", type=int, default=2000, help="api: requests per endpoint")
    args = parser.parse_args()
    configure_database(args.database, SCALES[args.scale])
    if args.target in ("api", "ingest"):
        import os

        from bench.api_throughput import DEFAULT_CACHE_URL

        os.environ["CACHE_URL"] = os.environ.get("BENCH_CACHE_URL", DEFAULT_CACHE_URL)
        os.environ.setdefault("API_THROTTLE_RATE", "1000000000/min")

    import django

    django.setup()
    from django.db import connection

    if args.target == "import":
        return _profile_import(args)

    from bench.dataset import DatasetSpec, ensure_dataset

    dataset = ensure_dataset(DatasetSpec.for_jobs(SCALES[args.scale]))
    if args.target == "api":
        return _profile_api(args, dataset)
    if args.target == "ingest":
        return _profile_ingest(args)
    if args.target == "recompute":
        from bench.engine import _empty_aggregates
        from usage.engine.recompute import usage_recompute

        if args.empty:
            _empty_aggregates()
        queries, wall = profiled(lambda: print(usage_recompute()))
    else:
        from accounts.models import Organisation
        from usage.months import parse_month
        from usage.selectors import usage_report

        info = dataset.small if args.small else dataset.big
        organisation = Organisation.objects.get(pk=info.pk)
        start, end = (parse_month(month) for month in dataset.report_months)

        def reports():
            for _ in range(100):
                usage_report(organisation=organisation, start_month=start, end_month=end)

        reports()  # warm up
        queries, wall = profiled(reports)
    print(sql_breakdown(queries, wall))
    if connection.vendor == "postgresql" and args.target == "recompute":
        print(explain(queries))
    return 0


def _wsgi_request(handler, path: str, key: str, *, body: bytes | None = None) -> int:
    """One request through the WSGI handler (a POST of ``body`` when given, else a GET), its answer
    read and closed as a server would; the status."""
    import io

    route, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET" if body is None else "POST",
        "PATH_INFO": route,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body is not None:
        environ.update(CONTENT_TYPE="application/json", CONTENT_LENGTH=str(len(body)))
    status = []
    answer = handler(environ, lambda line, headers, exc_info=None: status.append(line))
    try:
        for _ in answer:
            pass
    finally:
        answer.close()
    return int(status[0].split()[0])


def _profile_api(args, dataset) -> int:
    """CPU per request of each API endpoint in-process, then the call tree of ``args.path``."""
    from django.core.wsgi import get_wsgi_application

    from accounts.models import Organisation
    from accounts.services import api_key_create

    handler = get_wsgi_application()
    organisation = Organisation.objects.get(pk=dataset.big.pk)
    created = api_key_create(organisation=organisation, name=f"bench profile {time.time_ns()}")
    start, end = dataset.report_months
    paths = ["/api/v1/ping", f"/usage?start_month={start}&end_month={end}", "/api/v1/usage"]
    if args.path == "/usage":
        args.path = paths[1]
    try:
        for path in paths:
            for _ in range(50):  # warm up: prepared statements, cached bodies, connections
                status = _wsgi_request(handler, path, created.plaintext)
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.requests):
                _wsgi_request(handler, path, created.plaintext)
            wall = (time.perf_counter() - started) / args.requests * 1000
            cpu = (time.process_time() - cpu) / args.requests * 1000
            print(f"{path:60} {status}  {wall:.3f} ms wall, {cpu:.3f} ms CPU per request (this process)")
        queries, wall = profiled(
            lambda: [_wsgi_request(handler, args.path, created.plaintext) for _ in range(args.requests)]
        )
        print(sql_breakdown(queries, wall))
    finally:
        created.api_key.delete()
    return 0


def _profile_ingest(args) -> int:
    """Ingestion in-process: first batches, their replay, one-item updates; then two call trees."""
    import json

    from django.core.wsgi import get_wsgi_application

    from accounts.models import ApiKey, Organisation, ServiceKey
    from accounts.services import api_key_create, organisation_create, service_key_create
    from bench.ingest import job_items
    from usage.models import Job

    handler = get_wsgi_application()
    tag = time.time_ns()
    org_ids = [f"org_bp{tag}{index}" for index in range(10)]
    organisations = [organisation_create(name=f"bench profile {org_id}", org_id=org_id) for org_id in org_ids]
    for organisation in organisations:
        api_key_create(organisation=organisation, name="k1")
    ping = api_key_create(organisation=organisations[0], name=f"bench profile {tag}")
    service = service_key_create(name=f"bench profile {tag}")
    month = time.strftime("%Y-%m")
    items = job_items(org_ids, month)
    batches = [
        json.dumps({"jobs": items[start : start + 1000]}).encode() for start in range(0, len(items), 1000)
    ]
    updates = [
        json.dumps({"jobs": [dict(item, status="processing")]}).encode() for item in items[: args.requests]
    ]

    def timed(label: str, bodies: list[bytes], key: str, path: str = "/api/v1/ingest/jobs") -> None:
        started, cpu = time.perf_counter(), time.process_time()
        for body in bodies:
            status = _wsgi_request(handler, path, key, body=body if path != "/api/v1/ping" else None)
            if status != 200:
                raise RuntimeError(f"{label}: {status}")
        count = len(bodies)
        wall = (time.perf_counter() - started) / count * 1000
        cpu = (time.process_time() - cpu) / count * 1000
        print(f"{label:44} {wall:8.3f} ms wall, {cpu:8.3f} ms CPU per request (this process)")

    try:
        for _ in range(50):
            _wsgi_request(handler, "/api/v1/ping", ping.plaintext)
        timed("ping", [b""] * args.requests, ping.plaintext, "/api/v1/ping")
        timed("first ingestion, 1,000 items", batches, service.plaintext)
        timed("replay, 1,000 items", batches, service.plaintext)
        timed("one-item status update", updates, service.plaintext)
        print("\n--- replay ---")
        queries, wall = profiled(
            lambda: [
                _wsgi_request(handler, "/api/v1/ingest/jobs", service.plaintext, body=b) for b in batches
            ]
        )
        print(sql_breakdown(queries, wall))
        again = [
            json.dumps({"jobs": [dict(item, status="failed")]}).encode() for item in items[: args.requests]
        ]
        print("\n--- one-item status update ---")
        queries, wall = profiled(
            lambda: [_wsgi_request(handler, "/api/v1/ingest/jobs", service.plaintext, body=b) for b in again]
        )
        print(sql_breakdown(queries, wall))
    finally:
        pks = [organisation.pk for organisation in organisations]
        Job.objects.filter(organisation_id__in=pks).delete()
        ApiKey.objects.filter(organisation_id__in=pks).delete()
        Organisation.objects.filter(pk__in=pks).delete()
        ServiceKey.objects.filter(pk=service.service_key.pk).delete()
    return 0


def _profile_import(args) -> int:
    """import_jobs of the throughput file into a fresh copy of the import template, in-process."""
    import os
    import shutil
    import tempfile

    from bench.common import Context
    from bench.engine import ensure_import_files, ensure_import_template

    context = Context(
        vendor="sqlite",
        vendor_version="",
        database_url="",
        database_arg="sqlite",
        scale=args.scale,
        dataset=None,
        repeat=1,
        quick=args.scale != "full",
    )
    rate_file, _ = ensure_import_files(context)
    template = ensure_import_template(context)
    with tempfile.TemporaryDirectory(dir=template.parent) as scratch:
        if args.lines:
            cut = Path(scratch) / "cut.jsonl"
            with open(rate_file, encoding="utf-8") as source, open(cut, "w", encoding="utf-8") as target:
                for _, line in zip(range(args.lines), source, strict=False):
                    target.write(line)
            rate_file = cut
        database = Path(scratch) / "import.sqlite3"
        shutil.copyfile(template, database)
        from django.db import connections

        connections.close_all()
        settings_dict = connections["default"].settings_dict
        settings_dict["NAME"] = str(database)
        os.environ["DATABASE_URL"] = f"sqlite:///{database}"
        from django.core.management import call_command

        queries, wall = profiled(lambda: call_command("import_jobs", str(rate_file)))
        print(sql_breakdown(queries, wall))
        connections.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
