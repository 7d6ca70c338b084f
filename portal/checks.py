"""Start-up checks of the deployment that are not worth refusing to start for.

They are logged warnings at start-up (``portal/apps.py``), not system-check messages: a message
of any level would make ``check --deploy`` report an issue before the build step that runs
``collectstatic``.
"""

from pathlib import Path

from django.conf import settings


def static_manifest_missing() -> bool:
    """True when DEBUG is off and ``collectstatic`` has not written its manifest."""
    return not settings.DEBUG and not (Path(settings.STATIC_ROOT) / "staticfiles.json").exists()
