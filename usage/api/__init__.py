"""The usage REST API (``GET /usage``, ``GET /api/v1/usage``, ``GET /api/v1/ping``): views,
serializers, the period rules, call counting, routes and the OpenAPI text."""
