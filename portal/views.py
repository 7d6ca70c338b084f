"""The operations endpoints: liveness (``/healthz``) and readiness (``/readyz``).

Neither needs a key or reads any data; both answer ``Cache-Control: no-store``.
"""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .health import readiness


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the process answers requests; touches no dependency."""
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the cache and the broker answer, else 503 naming the one that failed."""
    report = readiness()
    return JsonResponse(report, status=503 if "failed" in report else 200)
