"""The pages with DEBUG off: collectstatic works and whitenoise serves the hashed stylesheet."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

BASE_DIR = Path(__file__).resolve().parent.parent
PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """Run collectstatic once, as production would: the real settings, DEBUG off, a long key."""
    static_root = tmp_path_factory.mktemp("staticfiles")
    script = (
        "import django; from django.conf import settings; "
        f"django.setup(); settings.STATIC_ROOT = {str(static_root)!r}; "
        "from django.core.management import call_command; "
        "call_command('collectstatic', interactive=False, verbosity=0); "
        "from django.contrib.staticfiles.storage import staticfiles_storage as storage; "
        "print(storage.url('css/portal.css'))"
    )
    environment = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DEBUG": "False",
        "SECRET_KEY": "x" * 60,
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return static_root, result


@pytest.fixture
def production_static(settings, collected):
    settings.DEBUG = False
    settings.STATIC_ROOT = collected[0]
    settings.STORAGES = PRODUCTION_STORAGES
    return collected[0]


def test_collectstatic_works_with_debug_off(collected):
    static_root, result = collected

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"/static/css/portal\.[0-9a-f]{12}\.css", result.stdout.strip())
    assert (static_root / "css" / "portal.css.gz").exists()
    assert (static_root / "staticfiles.json").exists()


def test_pages_render_and_the_stylesheet_is_served_with_debug_off(production_static, owner):
    client = Client()
    client.force_login(owner)

    login = Client().get(reverse("login"))
    usage = client.get(reverse("usage-page", kwargs={"org_id": "org_acme"}))
    keys = client.get(reverse("api-keys", kwargs={"org_id": "org_acme"}))

    assert login.status_code == usage.status_code == keys.status_code == 200
    stylesheet = re.search(r'href="(/static/css/portal\.[0-9a-f]{12}\.css)"', usage.content.decode()).group(1)
    served = client.get(stylesheet)
    assert served.status_code == 200
    assert b"--accent" in b"".join(served.streaming_content)
    assert "max-age" in served["Cache-Control"]
    assert (production_static / "img").is_dir()


def test_errors_use_the_portal_pages_with_debug_off(production_static, outsider, acme):
    client = Client()
    client.force_login(outsider)

    response = client.get(reverse("usage-page", kwargs={"org_id": "org_acme"}))

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
