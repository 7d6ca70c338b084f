import logging
import sys

from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The project's own plumbing (no models): its start-up warnings."""

    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from .checks import static_manifest_missing

        if static_manifest_missing() and "collectstatic" not in sys.argv[1:2]:
            logging.getLogger("portal").warning(
                "DEBUG is off and static files are not collected: run manage.py collectstatic "
                "(until then they are served unhashed from the source folders)."
            )
