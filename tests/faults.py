"""Throwaway servers for the fault tests: a private ``redis-server`` and a private PostgreSQL
cluster (``initdb`` + ``pg_ctl``), each on a free port, that a test may kill and restart at will.
They are never the machine's shared services.

A test that cannot start one (no binary, no ``postgres`` user to run the cluster as when we are
root) is skipped with the reason on a laptop, and fails under ``CI=true``: CI must run the fault
suite, not skip it.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"


def skip_or_fail(reason: str) -> None:
    """Skip the current test for ``reason``; fail it instead under ``CI=true``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A private ``redis-server`` without persistence, on a fixed port across restarts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    @staticmethod
    def available() -> str | None:
        """Why no server can be started here, or None."""
        return None if shutil.which("redis-server") else "no redis-server binary on this machine"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def _postgres_bindir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, Debian's versioned
    folders (newest first), then the PATH."""
    candidates = []
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(found.stdout.strip())
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


class PostgresCluster:
    """A private PostgreSQL cluster in a temporary folder: its own port, its socket in that
    folder, ``fsync=off`` (a test's data need not survive a power cut; a crash of the server
    alone, ``stop("immediate")``, loses no committed transaction: ``synchronous_commit`` stays on,
    so the WAL is written before a commit is acknowledged), superuser ``postgres``
    with trust authentication on 127.0.0.1.

    PostgreSQL refuses to run as root: when we are root the folder is given to the ``postgres``
    user and every server command runs as that user (``runuser``).
    """

    def __init__(self) -> None:
        self.bindir = _postgres_bindir()
        self.port = free_port()
        self.folder: Path | None = None

    def unavailable(self) -> str | None:
        """Why no cluster can be started here, or None."""
        if self.bindir is None:
            return "no initdb/pg_ctl on this machine (PostgreSQL server binaries)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user to run a cluster as"
            if not shutil.which("runuser"):
                return "running as root and runuser is missing"
        return None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    @property
    def data(self) -> Path:
        assert self.folder is not None
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create(self) -> None:
        """``initdb`` a new cluster and start it."""
        self.folder = Path(tempfile.mkdtemp(prefix="pg-fault-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=50"
        )
        started = self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "start",
            check=False,
        )
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {started.stdout}{started.stderr}{self.log()[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE``: ``immediate`` kills every server process without a checkpoint
        (a crash, recovered from at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def log(self) -> str:
        try:
            return (self.folder / "server.log").read_text(errors="replace")
        except (OSError, TypeError):
            return ""

    def destroy(self) -> None:
        if self.folder is None:
            return
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


def serve(environment: dict[str, str], *, workers: int = 2) -> tuple[subprocess.Popen, str]:
    """Start gunicorn (sync workers, its own session) with ``environment``; returns the master
    process and the base URL once every worker answers."""
    if not GUNICORN.exists():
        skip_or_fail("gunicorn is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "portal.wsgi:application",
            f"--workers={workers}",
            "--worker-class=sync",
            f"--bind=127.0.0.1:{port}",
            "--log-level=error",
            "--no-control-socket",
        ],
        cwd=ROOT,
        env=environment,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # ready once every worker answers (a 401 without a key)
        try:
            if all(
                requests.get(f"{url}/api/v1/ping", timeout=20).status_code == 401 for _ in range(workers * 2)
            ):
                return process, url
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("gunicorn did not start")
        time.sleep(0.2)


def worker_pids(master: subprocess.Popen) -> set[int]:
    """The pids of a gunicorn master's workers (its children), read from /proc."""
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children")
    return {int(pid) for pid in children.read_text().split()}


def celery_worker(*, name: str, env: dict[str, str], log) -> subprocess.Popen:
    """A real Celery worker of the portal (solo pool: each task runs in the worker process itself),
    named ``name``, with ``env`` as its environment and its output written to ``log``."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "-n",
            f"{name}-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
