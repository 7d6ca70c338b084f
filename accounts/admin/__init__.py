"""Staff admin of the accounts app: API keys, service keys, users and memberships. The organisation's page,
the staff's billing console, is ``usage.admin.organisations``."""

from . import keys, service_keys, users  # noqa: F401 (registers the model admins)
