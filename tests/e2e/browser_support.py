"""Finding the system Chromium for the browser tests, and what to do when it is missing.

The browser is never downloaded: Debian's ``chromium`` package provides ``/usr/bin/chromium``
(override with ``CHROMIUM_PATH``). Without it, or without the ``playwright`` package, the
browser tests are skipped with the reason, unless ``REQUIRE_BROWSER=1`` makes that a failure.
"""

import importlib.util
import os

import pytest

DEFAULT_CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path(environ=os.environ) -> str:
    return environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM_PATH


def browser_unavailable_reason(*, path: str) -> str | None:
    """Why the browser tests cannot run with the Chromium at ``path``, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "the 'playwright' Python package is not installed (pip install -r requirements.txt)"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return f"no Chromium at {path} (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


def skip_or_fail(reason: str, *, environ=os.environ) -> None:
    """Skip the current test for ``reason``; fail it instead when REQUIRE_BROWSER=1."""
    if environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")
