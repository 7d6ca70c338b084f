"""``python -m usage_portal_client``: the ``usage-portal`` command line."""

from .cli import main

raise SystemExit(main())
