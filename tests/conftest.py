"""Shared fixtures. Personas follow one organisation (Acme) and an outsider's (Globex)."""

import pytest

from accounts.models import Membership, User
from accounts.services import api_key_create, membership_add, organisation_create
from usage.engine.refresh import usage_refresh
from usage.services import jobs_upsert


def pytest_configure(config):
    """Personas are created with passwords: one cheap hasher, set once, keeps each to milliseconds."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_collection_modifyitems(config, items):
    """Every test that commits must use ``serialized_rollback``.

    A plain transactional test ends with a flush whose ``post_migrate`` recreates the staff roles
    (``accounts.roles``) under new ids; a serialized test after it would then restore the same
    groups a second time and fail on their unique names. So a test marked
    ``django_db(transaction=True)`` without ``serialized_rollback=True`` is an error at collection,
    whatever order the tests run in.
    """
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is None:
            continue
        transaction = marker.kwargs.get("transaction", marker.args[0] if marker.args else False)
        if transaction and not marker.kwargs.get("serialized_rollback", False):
            raise pytest.UsageError(
                f"{item.nodeid}: django_db(transaction=True) needs serialized_rollback=True "
                "(see tests/conftest.py)"
            )


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts and ends with an empty cache: no cached usage body, throttle or
    failed-authentication count leaks between tests (rolled-back tests reuse primary keys)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


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
