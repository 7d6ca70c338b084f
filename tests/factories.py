"""Helpers the tests build data and processes with: jobs, moments, the test database's URL and
``manage.py`` in a subprocess. Fixtures live in the conftest files; these are plain functions."""

import datetime as dt
import itertools

from usage.services import JobInput

_external_ids = itertools.count(1)


def make_job(organisation, *, created_at, api_key=None, **overrides) -> JobInput:
    values = {
        "organisation_id": organisation.pk,
        "api_key_id": api_key.pk if api_key else None,
        "external_id": f"job-{next(_external_ids)}",
        "created_at": created_at,
        "language": "Hindi",
        "audio_duration_seconds": 60,
        "status": "completed",
        "has_transcript": True,
        "has_lrc": True,
        "transcription_tokens": 100,
        "note_tokens": 200,
    }
    values.update(overrides)
    return JobInput(**values)


def at(year, month, day=1, hour=12, minute=0, second=0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def test_database_url() -> str:
    """A DATABASE_URL naming the test database, for processes started by a test."""
    from django.db import connection

    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or "postgres"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"


test_database_url.__test__ = False


def run_manage(*args, env=None, input_text=None):
    """Run ``manage.py`` in a subprocess against the test database; returns CompletedProcess."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    environment = {**os.environ, "DATABASE_URL": test_database_url(), **(env or {})}
    return subprocess.run(
        [sys.executable, str(root / "manage.py"), *args],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        input=input_text,
        timeout=120,
    )
