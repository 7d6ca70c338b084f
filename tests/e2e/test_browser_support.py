"""When the browser tests run, skip, or fail: decided without starting a browser."""

import os

import pytest

from tests.e2e.browser_support import browser_unavailable_reason, chromium_path, skip_or_fail


def test_the_system_chromium_is_the_default_and_can_be_overridden():
    assert chromium_path({}) == "/usr/bin/chromium"
    assert chromium_path({"CHROMIUM_PATH": "/opt/chromium/chrome"}) == "/opt/chromium/chrome"


def test_a_missing_chromium_is_named_in_the_reason(tmp_path):
    reason = browser_unavailable_reason(path=str(tmp_path / "chromium"))

    assert (
        reason == f"no Chromium at {tmp_path / 'chromium'} (apt-get install chromium, or set CHROMIUM_PATH)"
    )


def test_a_file_that_is_not_executable_is_not_a_browser(tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("")
    os.chmod(fake, 0o644)

    assert browser_unavailable_reason(path=str(fake)).startswith("no Chromium at")


def test_missing_playwright_is_named_in_the_reason(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)

    assert "'playwright' Python package is not installed" in browser_unavailable_reason(
        path="/usr/bin/chromium"
    )


def test_without_a_browser_the_tests_skip_saying_why():
    with pytest.raises(pytest.skip.Exception, match="browser tests skipped: no Chromium"):
        skip_or_fail("no Chromium at /x", environ={})


def test_require_browser_turns_the_skip_into_a_failure():
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_BROWSER=1 but no Chromium"):
        skip_or_fail("no Chromium at /x", environ={"REQUIRE_BROWSER": "1"})
