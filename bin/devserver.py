"""Serve the portal on 127.0.0.1:8000 with a Celery worker and beat beside it (``make run``).

All three stop together on one Ctrl-C, or when any of them exits.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ADDRESS = os.environ.get("RUN_ADDRESS", "127.0.0.1:8000")

COMMANDS = {
    "web": [PYTHON, "manage.py", "runserver", ADDRESS],
    "celery": [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "portal",
        "worker",
        "--beat",
        "--loglevel=INFO",
        "--concurrency=1",
        "--without-mingle",
        "--without-gossip",
    ],
}


def _stop(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    processes = {name: subprocess.Popen(command, cwd=ROOT) for name, command in COMMANDS.items()}
    print(
        f"Usage Portal on http://{ADDRESS}/ (Celery worker and beat running). Ctrl-C stops everything.",
        flush=True,
    )
    exit_code = 0
    try:
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}; stopping the rest.", flush=True)
                    exit_code = process.returncode or 1
                    raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
