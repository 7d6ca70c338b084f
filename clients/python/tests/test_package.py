"""The package as installed: typed, one runtime dependency, a console script."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import usage_portal_client

PACKAGE_DIR = Path(usage_portal_client.__file__).parent


def test_it_is_marked_typed():
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_everything_exported_exists():
    for name in usage_portal_client.__all__:
        assert hasattr(usage_portal_client, name), name


def test_python_dash_m_runs_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "usage_portal_client", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(PACKAGE_DIR.parent)},
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"usage-portal {usage_portal_client.__version__}\n"


@pytest.fixture
def distribution():
    try:
        return importlib.metadata.distribution("usage-portal-client")
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs usage-portal-client from requirements.txt, yet it is not installed")
        pytest.skip("usage-portal-client is not installed (pip install ./clients/python)")


def test_the_installed_distribution_matches_the_source(distribution):
    assert distribution.version == usage_portal_client.__version__
    requirements = distribution.requires or []
    assert [
        requirement.split(">")[0].split("=")[0].split("<")[0].strip() for requirement in requirements
    ] == ["httpx"]
    scripts = {
        entry.name: entry.value for entry in distribution.entry_points if entry.group == "console_scripts"
    }
    assert scripts == {"usage-portal": "usage_portal_client.cli:main"}


def test_the_console_script_is_on_the_path(distribution):
    script = shutil.which("usage-portal", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the usage-portal script is not beside this Python")

    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage-portal ")
