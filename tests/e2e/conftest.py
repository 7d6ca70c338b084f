"""Headless Chromium for the browser tests, driven by Playwright with the system's browser.

See ``browser_support`` for how the browser is found and when the tests skip or fail.
"""

from pathlib import Path

import pytest
from django.db import connections

from tests.e2e.browser_support import CHROMIUM_ARGS, browser_unavailable_reason, chromium_path, skip_or_fail

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def chromium(monkeypatch):
    """A running headless Chromium for one test; skips (or fails) when there is none."""
    path = chromium_path()
    reason = browser_unavailable_reason(path=path)
    if reason:
        skip_or_fail(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread while it is open; the
    # test's own ORM calls stay synchronous, so Django's async-safety guard must let them through.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # ORM calls made while Playwright runs get their own connection (it switches the context
        # Django keys connections by); close it, or PostgreSQL cannot drop the test database.
        connections.close_all()


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def desktop(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def phone(chromium):
    context = chromium.new_context(
        viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    yield context
    context.close()
