"""The REST API's exception handler: JSON for every error, never a traceback; a database that is
down is a 503 the client may retry."""

import logging
import uuid

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from portal.health import (
    DATABASE_UNAVAILABLE_DETAIL,
    DATABASE_UNAVAILABLE_ERRORS,
    RETRY_AFTER_SECONDS,
    database_connections_reset,
)

logger = logging.getLogger("portal.api")


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's handling for API errors; a database that is down (``OperationalError``,
    ``InterfaceError``) is a JSON 503 with ``Retry-After``; any other exception becomes a JSON
    500 with an error id.

    The id is in the response and in the log line that carries the traceback, so support can
    find one from the other. Neither the log line nor the response holds request headers (and so
    no API key).
    """
    response = exception_handler(exc, context)
    if response is not None:
        return response
    request = context.get("request")
    where = f"{request.method} {request.get_full_path()}" if request is not None else "unknown request"
    if isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        logger.warning("Database unavailable on %s: %s", where, exc.__class__.__name__, exc_info=exc)
        set_rollback()
        database_connections_reset()
        return Response(
            {"detail": DATABASE_UNAVAILABLE_DETAIL},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    error_id = uuid.uuid4().hex
    logger.error(
        "Unhandled API error %s on %s", error_id, where, exc_info=(type(exc), exc, exc.__traceback__)
    )
    set_rollback()
    return Response(
        {"detail": "Internal server error.", "error_id": error_id},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
