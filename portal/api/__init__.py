"""What every REST endpoint shares: API-key authentication, throttling, the JSON-only
negotiation and renderer, the exception handler, the ``ApiKeyView`` base and common OpenAPI
pieces. Endpoints themselves live with their app (``usage.api``)."""
