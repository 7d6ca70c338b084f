"""REST endpoints answered with an API key: ``GET /usage``, ``GET /api/v1/usage``, ``GET /api/v1/ping``.

Every view here translates the request, calls one selector and renders its result; the numbers
come from ``usage.selectors`` only. ``ApiKeyView`` holds the policy they share (authentication,
call counting, throttling, JSON errors, no caching).
"""

from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import BearerKeyAuthentication, HasApiKey
from accounts.throttling import ApiKeyRateThrottle, AuthFailureLimit
from portal.renderers import ExactJSONRenderer

from .calls import api_call_record
from .months import month_of
from .periods import PeriodError, period_resolve
from .selectors import usage_all_time, usage_report, usage_version
from .serializers import (
    AllTimeUsageSerializer,
    ErrorSerializer,
    MonthlyUsageSerializer,
    ParameterErrorSerializer,
    PingSerializer,
    ServerErrorSerializer,
    all_time_usage_data,
    monthly_usage_data,
)

BODY_CACHE_SECONDS = 3600


class JSONOnlyNegotiation(BaseContentNegotiation):
    """Always answer JSON, whatever ``Accept`` says: the contracts define JSON bodies only."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ApiKeyView(APIView):
    """Base of the endpoints authenticated by an API key.

    In order, for every request:
    1. a client address that has failed authentication too often this minute gets 429;
    2. the Bearer key is checked (401 for a missing, malformed, unknown or revoked key, 403 for
       an inactive organisation), and a 401 counts against the address's budget;
    3. the request is counted as one API call of the key, before anything else can fail, so
       400, 404, 405 and 429 answers are calls too;
    4. the per-key throttle (429 with ``Retry-After``), then the handler.
    Every response is JSON and carries ``Cache-Control: no-store``.
    """

    authentication_classes = [BearerKeyAuthentication]
    permission_classes = [HasApiKey]
    throttle_classes = [ApiKeyRateThrottle]
    renderer_classes = [ExactJSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation

    def initial(self, request, *args, **kwargs):
        self.now = timezone.now()
        self.auth_failures = AuthFailureLimit()
        self.client_ident = self.auth_failures.ident(request)
        wait = self.auth_failures.blocked_for(self.client_ident)
        if wait is not None:
            raise exceptions.Throttled(wait=wait, detail="Too many failed authentications from this address.")
        self.perform_authentication(request)
        if request.auth is not None:
            api_call_record(api_key=request.auth, now=self.now)
        super().initial(request, *args, **kwargs)

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if response.status_code == 401 and getattr(self, "auth_failures", None) is not None:
            self.auth_failures.record(self.client_ident)
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


_ERROR_RESPONSES = {
    401: OpenApiResponse(
        ErrorSerializer,
        description="Missing, malformed, unknown or revoked API key (with `WWW-Authenticate: Bearer`).",
        examples=[OpenApiExample("Invalid key", value={"detail": "Invalid API key."}, status_codes=["401"])],
    ),
    403: OpenApiResponse(
        ErrorSerializer,
        description="The key's organisation is inactive.",
        examples=[
            OpenApiExample(
                "Inactive organisation",
                value={"detail": "This API key's organisation is inactive."},
                status_codes=["403"],
            )
        ],
    ),
    429: OpenApiResponse(
        ErrorSerializer,
        description=(
            "Too many requests with this key (`API_THROTTLE_RATE`, default 600 a minute), or too many "
            "failed authentications from this address. `Retry-After` gives the seconds to wait. "
            "A throttled request with a valid key still counts as an API call."
        ),
        examples=[
            OpenApiExample(
                "Throttled",
                value={"detail": "Request was throttled. Expected available in 12 seconds."},
                status_codes=["429"],
            )
        ],
    ),
    500: OpenApiResponse(
        ServerErrorSerializer,
        description="An unexpected error; `error_id` identifies it in the portal's logs.",
        examples=[
            OpenApiExample(
                "Server error",
                value={"detail": "Internal server error.", "error_id": "0f8c2b1e9d7a4c3b8e6f5a4d3c2b1a09"},
                status_codes=["500"],
            )
        ],
    ),
}

MONTHLY_DESCRIPTION = """\
Usage of your organisation (the organisation of the API key; never another) over whole UTC
months: job counts, tokens and costs in total, per month and per API key.

**Period.** Neither parameter: the current month. Only `start_month`: from it through the
current month. Only `end_month`: that month alone. A malformed month (an empty value included),
a month after the current one, `start_month` after `end_month`, or more than 120 months
(counting both ends) is answered 400 with the offending parameter named. Other query parameters
are ignored.

**Numbers.** Every job counts whatever its status. Jobs are ranked by creation time within each
month; a job's tier is the plan tier holding its rank, and its discount applies to it alone.
Money is summed exactly and rounded half-up to 5 decimal places only in this response;
percentages to 2 places. `monthly_breakdown` lists every month of the period, months without
jobs included, and every `tiers` object lists every tier of your plan. `api_keys` lists, by name,
every key with jobs in the period, revoked keys included.

**About the example in the monthly-usage contract.** The example response published with the
contract does not add up: its totals count 108 jobs while its only month counts 107, and a key
with 1 job shows 108 tier1 jobs. This portal follows one rule instead (the portal's "Usage
semantics"): the totals are exactly the sum of the months, and each month is exactly the sum of
its API keys plus the jobs submitted without a key (web jobs, which count in the totals and the
months but under no key). The example below is self-consistent under the standard plan.
"""

MONTHLY_EXAMPLE = {
    "period": {"start_month": "2025-01", "end_month": "2025-01"},
    "totals": {
        "jobs": 108,
        "transcription_tokens": 1672,
        "note_tokens": 2905,
        "base_cost": 0.07482,
        "final_cost": 0.07482,
        "savings": 0.0,
        "effective_discount_percentage": 0.0,
        "free_jobs_left": 0,
    },
    "monthly_breakdown": [
        {
            "month": "2025-01",
            "jobs": 108,
            "transcription_tokens": 1672,
            "note_tokens": 2905,
            "base_cost": 0.07482,
            "final_cost": 0.07482,
            "savings": 0.0,
            "current_tier_discount": 0.0,
            "tiers": {"tier1": 108, "tier2": 0, "tier3": 0, "tier4": 0},
        }
    ],
    "api_keys": {
        "another api key": {
            "jobs": 1,
            "tokens": {"transcription": 152, "note_generation": 190},
            "costs": {"base": 0.00532, "final": 0.00532, "savings": 0.0},
            "tiers": {"tier1": 1, "tier2": 0, "tier3": 0, "tier4": 0},
        },
        "some api key": {
            "jobs": 107,
            "tokens": {"transcription": 1520, "note_generation": 2715},
            "costs": {"base": 0.0695, "final": 0.0695, "savings": 0.0},
            "tiers": {"tier1": 107, "tier2": 0, "tier3": 0, "tier4": 0},
        },
    },
}

ALL_TIME_EXAMPLE = {
    "org_id": "org_abc123",
    "period": "all_time",
    "total_jobs": 142,
    "completed_jobs": 138,
    "total_duration_seconds": 49320,
    "jobs_by_language": {"Hindi": 58, "Tamil": 44, "Telugu": 22, "Punjabi": 18},
    "api_calls": 612,
}

_RESPONSE_HEADERS = [
    OpenApiParameter(
        "Cache-Control",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=True,
        required=True,
        description="Always `no-store`: usage is fresh at every request.",
    ),
    OpenApiParameter(
        "WWW-Authenticate",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=[401],
        required=True,
        description="`Bearer`.",
    ),
    OpenApiParameter(
        "Retry-After",
        OpenApiTypes.INT,
        OpenApiParameter.HEADER,
        response=[429],
        required=True,
        description="Seconds to wait before the next request.",
    ),
]

_MONTH_PARAMETER = {
    "type": OpenApiTypes.STR,
    "location": OpenApiParameter.QUERY,
    "required": False,
    "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$",
}


class MonthlyUsageView(ApiKeyView):
    """``GET /usage``: the monthly contract, for the key's organisation."""

    @extend_schema(
        operation_id="usage_monthly",
        summary="Usage by month, with costs",
        description=MONTHLY_DESCRIPTION,
        tags=["usage"],
        parameters=[
            OpenApiParameter(
                "start_month",
                description="First month, YYYY-MM (UTC). Default: the current month, or end_month if given.",
                examples=[OpenApiExample("January 2025", value="2025-01")],
                **_MONTH_PARAMETER,
            ),
            OpenApiParameter(
                "end_month",
                description="Last month, YYYY-MM (UTC), inclusive. Default: the current month.",
                examples=[OpenApiExample("January 2025", value="2025-01")],
                **_MONTH_PARAMETER,
            ),
            *_RESPONSE_HEADERS,
        ],
        responses={
            200: OpenApiResponse(
                MonthlyUsageSerializer,
                description="Usage of the period.",
                examples=[OpenApiExample("One month, two keys", value=MONTHLY_EXAMPLE, status_codes=["200"])],
            ),
            400: OpenApiResponse(
                ParameterErrorSerializer,
                description="A bad period; the body names the offending parameter.",
                examples=[
                    OpenApiExample(
                        "Malformed month",
                        value={
                            "detail": "Invalid query parameter: start_month.",
                            "start_month": ["'2025-13' is not a month: expected YYYY-MM, e.g. 2025-01."],
                        },
                        status_codes=["400"],
                    )
                ],
            ),
            **_ERROR_RESPONSES,
        },
    )
    def get(self, request):
        try:
            period = period_resolve(
                start_month=request.query_params.get("start_month"),
                end_month=request.query_params.get("end_month"),
                current_month=month_of(self.now),
            )
        except PeriodError as error:
            names = ", ".join(error.errors)
            raise exceptions.ValidationError(
                {"detail": f"Invalid query parameter: {names}.", **error.errors}
            ) from None
        organisation = request.auth.organisation
        # The body depends only on the organisation's usage version and the period, so a cached
        # body under the current version is exactly what a fresh report would say.
        cache_key = (
            f"usage-body:{organisation.pk}:{usage_version(organisation=organisation)}:"
            f"{period.start_month:%Y-%m}:{period.end_month:%Y-%m}"
        )
        body = cache.get(cache_key)
        if body is None:
            body = monthly_usage_data(
                usage_report(
                    organisation=organisation,
                    start_month=period.start_month,
                    end_month=period.end_month,
                    refresh=False,
                )
            )
            cache.set(cache_key, body, timeout=BODY_CACHE_SECONDS)
        return Response(body)


class AllTimeUsageView(ApiKeyView):
    """``GET /api/v1/usage``: the all-time contract, for the key's organisation."""

    @extend_schema(
        operation_id="usage_all_time",
        summary="All-time usage via the API",
        description=(
            "All-time figures of your organisation (the organisation of the API key): the jobs "
            "submitted with an API key (counts, completed jobs, audio duration, jobs by language) and "
            "every API request made with the organisation's keys, this one included. Query "
            "parameters are ignored."
        ),
        tags=["usage"],
        parameters=_RESPONSE_HEADERS,
        responses={
            200: OpenApiResponse(
                AllTimeUsageSerializer,
                description="All-time usage.",
                examples=[OpenApiExample("All time", value=ALL_TIME_EXAMPLE, status_codes=["200"])],
            ),
            **_ERROR_RESPONSES,
        },
    )
    def get(self, request):
        organisation = request.auth.organisation
        return Response(
            all_time_usage_data(organisation=organisation, usage=usage_all_time(organisation=organisation))
        )


class PingView(ApiKeyView):
    """``GET /api/v1/ping``: checks a key, and nothing else (it counts as an API call)."""

    @extend_schema(
        operation_id="ping",
        summary="Check an API key",
        description="Answers the key's organisation id. Counts as an API call like any request.",
        tags=["meta"],
        parameters=_RESPONSE_HEADERS,
        responses={
            200: OpenApiResponse(
                PingSerializer,
                description="The key is valid.",
                examples=[OpenApiExample("Valid key", value={"org_id": "org_abc123"}, status_codes=["200"])],
            ),
            **_ERROR_RESPONSES,
        },
    )
    def get(self, request):
        return Response({"org_id": request.auth.organisation.org_id})


@extend_schema(exclude=True)
class NotFoundView(ApiKeyView):
    """Any other path under the API's prefixes: a JSON 404, counted as a call when the key is valid."""

    def get(self, request, *args, **kwargs):
        raise exceptions.NotFound("No such API endpoint.")

    post = put = patch = delete = options = get
