"""DEBUG off before ``collectstatic``: pages render (never a 500) with their static files served
from the source folders, and the start-up says to run it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, re
import django
django.setup()
from django.test import Client
client = Client()
page = client.get("/accounts/login/")
html = page.content.decode()
links = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
served = {link: client.get(link).status_code for link in links}
print(json.dumps({"status": page.status_code, "links": links, "served": served}))
"""


def _run(arguments, tmp_path):
    environment = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DEBUG": "False",
        "SECRET_KEY": "k" * 60,
        "ALLOWED_HOSTS": "testserver",
        # Never collected: a folder that does not exist, whatever the checkout holds.
        "STATIC_ROOT": str(tmp_path / "staticfiles"),
        # The login page reads no table; a database that is never created.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "CELERY_FILESYSTEM_BROKER_DIR": str(tmp_path / "broker"),
    }
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tmp_module_path(tmp_path_factory):
    return tmp_path_factory.mktemp("no-collectstatic")


def test_pages_render_with_debug_off_before_collectstatic(tmp_module_path):
    result = _run(["-c", SCRIPT], tmp_module_path)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    assert "/static/css/portal.css" in report["links"]
    assert report["served"] and set(report["served"].values()) == {200}, report["served"]
    assert "run manage.py collectstatic" in result.stderr
    assert not (tmp_module_path / "staticfiles").exists()


def test_the_start_up_warns_without_failing_the_checks(tmp_module_path):
    result = _run(["manage.py", "check", "--fail-level", "WARNING"], tmp_module_path)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
    assert "WARNING portal DEBUG is off and static files are not collected" in result.stderr
    assert "run manage.py collectstatic" in result.stderr


def test_no_warning_once_collected_or_in_debug(settings, tmp_path):
    from portal.checks import static_manifest_missing

    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path
    assert static_manifest_missing()
    (tmp_path / "staticfiles.json").write_text("{}")
    assert not static_manifest_missing()
    settings.DEBUG = True
    (tmp_path / "staticfiles.json").unlink()
    assert not static_manifest_missing()
