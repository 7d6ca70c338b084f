"""Staff admin of the usage app, one module per model family: ``organisations`` (the billing
console), ``jobs``, ``plans`` and ``aggregates``; ``base`` holds what they share."""

from . import aggregates, jobs, organisations, plans  # noqa: F401 (registers the model admins)
