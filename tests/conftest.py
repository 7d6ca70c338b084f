"""Shared fixtures. Personas follow one organisation (Acme) and an outsider's (Globex)."""

import datetime as dt
import itertools

import pytest

from accounts.models import Membership, User
from accounts.services import api_key_create, membership_add, organisation_create
from usage.engine.refresh import usage_refresh
from usage.services import JobInput, jobs_upsert

_external_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache: rolled-back tests reuse primary keys on SQLite."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _standard_plan(request):
    """Keep the migration's standard plan present even after a transactional test flushed it."""
    if "django_db_setup" not in request.fixturenames:
        return
    from importlib import import_module

    from django.apps import apps

    request.getfixturevalue("_django_db_helper")
    migration = import_module("usage.migrations.0002_standard_plan")
    migration.create_standard_plan(apps, None)


@pytest.fixture
def acme(db):
    return organisation_create(name="Acme", org_id="org_acme")


@pytest.fixture
def globex(db):
    return organisation_create(name="Globex", org_id="org_globex")


@pytest.fixture
def owner(acme):
    user = User.objects.create_user("olivia", "olivia@acme.test", "owner-pass-123")
    membership_add(organisation=acme, user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def member(acme):
    user = User.objects.create_user("max", "max@acme.test", "member-pass-123")
    membership_add(organisation=acme, user=user, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def outsider(globex):
    user = User.objects.create_user("oscar", "oscar@globex.test", "outsider-pass-123")
    membership_add(organisation=globex, user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def staff(db):
    return User.objects.create_user("sam", "sam@portal.test", "staff-pass-123", is_staff=True)


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@portal.test", "root-pass-123")


@pytest.fixture
def acme_key(acme):
    """A created key of Acme: ``.api_key`` is the row, ``.plaintext`` the secret."""
    return api_key_create(organisation=acme, name="some api key")


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


@pytest.fixture
def add_jobs():
    """Write jobs through the real service and resolve the usage, as an import does."""

    def add(jobs):
        jobs = list(jobs)
        result = jobs_upsert(jobs=jobs)
        for organisation_id in {job.organisation_id for job in jobs}:
            usage_refresh(organisation_id=organisation_id)
        return result

    return add


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

@pytest.fixture
def support_staff(db):
    """Staff in the "Support" group (see ``accounts.roles``): views all, revokes, recomputes."""
    from django.contrib.auth.models import Group

    user = User.objects.create_user("sue", "sue@portal.test", "support-pass-123", is_staff=True)
    user.groups.add(Group.objects.get(name="Support"))
    return user


@pytest.fixture
def finance_staff(db):
    """Staff in the "Finance" group: views all, edits pricing plans and free-job allowances."""
    from django.contrib.auth.models import Group

    user = User.objects.create_user("fiona", "fiona@portal.test", "finance-pass-123", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    return user


@pytest.fixture
def admin_form_data():
    """Turn a rendered admin add/change page into the POST data that would submit it unchanged.

    Covers the main form and every inline formset (management forms included); tests then
    override the fields they mean to change.
    """

    from django.forms import MultiWidget

    def collect(form, data):
        for name in form.fields:
            value = form[name].value()
            key = form.add_prefix(name)
            widget = form.fields[name].widget
            if isinstance(widget, MultiWidget):  # e.g. the admin's split date and time
                parts = value if isinstance(value, list) else widget.decompress(value)
                for suffix, subwidget, part in zip(widget.widgets_names, widget.widgets, parts, strict=True):
                    data[key + suffix] = subwidget.format_value(part) or ""
                continue
            if value is None or value is False:
                continue
            if value is True:
                data[key] = "on"
            elif isinstance(value, list | tuple):
                data[key] = [str(item) for item in value]
            else:
                data[key] = str(value)

    def build(response) -> dict:
        data: dict = {}
        collect(response.context["adminform"].form, data)
        for inline in response.context["inline_admin_formsets"]:
            formset = inline.formset
            collect(formset.management_form, data)
            for form in formset.forms:
                collect(form, data)
        return data

    return build
