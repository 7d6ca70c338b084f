"""REST endpoints answered with an API key: ``GET /usage``, ``GET /api/v1/usage``, ``GET /api/v1/ping``.

Every view here translates the request, calls one selector and renders its result; the numbers
come from ``usage.selectors`` only. ``portal.api.views.ApiKeyView`` holds the policy they share
(authentication, throttling, JSON errors, no caching); ``CountedApiKeyView`` adds the call count.
"""

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from portal.api.authentication import LookupExtra
from portal.api.renderers import ExactJSONRenderer
from portal.api.schema import ERROR_RESPONSES, RESPONSE_HEADERS
from portal.api.views import ApiKeyView
from usage.engine.refresh import stale_marks_exist_sql
from usage.months import month_of
from usage.selectors import NOT_READ, usage_all_time, usage_body_cache_key, usage_report_presented

from .calls import CountingApiKeyRateThrottle
from .periods import PeriodError, period_resolve
from .schema import ALL_TIME_EXAMPLE, MONTH_PARAMETER, MONTHLY_DESCRIPTION, MONTHLY_EXAMPLE
from .serializers import (
    AllTimeUsageSerializer,
    MonthlyUsageSerializer,
    ParameterErrorSerializer,
    PingSerializer,
    all_time_usage_data,
    monthly_usage_json,
)


class CountedApiKeyView(ApiKeyView):
    """An endpoint of the customer API: every request with a valid key is one API call of it,
    counted by its throttle in the same Redis round trip as the throttle's own hit."""

    throttle_classes = [CountingApiKeyRateThrottle]


# The usage reads' key check also reads, in the key's lookup statement, whether the organisation
# has stale marks: with none (the usual case) the read needs no query of its own to know that its
# usage version is current.
STALE_MARKS = LookupExtra(name="stale_marks", sql=stale_marks_exist_sql)


def _stale_marks(request) -> bool:
    return bool(request.auth.lookup_extras[STALE_MARKS.name])


class MonthlyUsageView(CountedApiKeyView):
    """``GET /usage``: the monthly contract, for the key's organisation. The body is cached as
    the JSON bytes sent, under the organisation's usage version, and sent as they are."""

    lookup_extras = (STALE_MARKS,)

    def _period(self, request):
        """The period asked for (resolved once per request); PeriodError when it is bad."""
        if not hasattr(self, "period"):
            self.period = period_resolve(
                start_month=request.query_params.get("start_month"),
                end_month=request.query_params.get("end_month"),
                current_month=month_of(self.now),
            )
        return self.period

    def prefetch_cache_key(self, request) -> str | None:
        """The cached body's key, read in the call count's Redis round trip (see
        ``CountingApiKeyRateThrottle``); None when the version may change (stale marks) or the
        period is bad."""
        if _stale_marks(request):
            return None
        try:
            period = self._period(request)
        except PeriodError:
            return None
        return usage_body_cache_key(
            organisation_id=request.auth.organisation_id,
            version=request.auth.organisation.usage_version,
            present=monthly_usage_json,
            start_month=period.start_month,
            end_month=period.end_month,
        )

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
                **MONTH_PARAMETER,
            ),
            OpenApiParameter(
                "end_month",
                description="Last month, YYYY-MM (UTC), inclusive. Default: the current month.",
                examples=[OpenApiExample("January 2025", value="2025-01")],
                **MONTH_PARAMETER,
            ),
            *RESPONSE_HEADERS,
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
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        try:
            period = self._period(request)
        except PeriodError as error:
            names = ", ".join(error.errors)
            raise exceptions.ValidationError(
                {"detail": f"Invalid query parameter: {names}.", **error.errors}
            ) from None
        stale_marks = _stale_marks(request)
        body = usage_report_presented(
            organisation=request.auth.organisation,
            start_month=period.start_month,
            end_month=period.end_month,
            present=monthly_usage_json,
            stale_marks=stale_marks,
            cached=NOT_READ if stale_marks else getattr(self, "prefetched", NOT_READ),
        )
        return HttpResponse(body, content_type=ExactJSONRenderer.media_type)


class AllTimeUsageView(CountedApiKeyView):
    """``GET /api/v1/usage``: the all-time contract, for the key's organisation."""

    lookup_extras = (STALE_MARKS,)

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
        parameters=RESPONSE_HEADERS,
        responses={
            200: OpenApiResponse(
                AllTimeUsageSerializer,
                description="All-time usage.",
                examples=[OpenApiExample("All time", value=ALL_TIME_EXAMPLE, status_codes=["200"])],
            ),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        organisation = request.auth.organisation
        return Response(
            all_time_usage_data(
                organisation=organisation,
                usage=usage_all_time(organisation=organisation, stale_marks=_stale_marks(request)),
            )
        )


class PingView(CountedApiKeyView):
    """``GET /api/v1/ping``: checks a key, and nothing else (it counts as an API call)."""

    @extend_schema(
        operation_id="ping",
        summary="Check an API key",
        description="Answers the key's organisation id. Counts as an API call like any request.",
        tags=["meta"],
        parameters=RESPONSE_HEADERS,
        responses={
            200: OpenApiResponse(
                PingSerializer,
                description="The key is valid.",
                examples=[OpenApiExample("Valid key", value={"org_id": "org_abc123"}, status_codes=["200"])],
            ),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        return Response({"org_id": request.auth.organisation.org_id})


@extend_schema(exclude=True)
class NotFoundView(CountedApiKeyView):
    """Any other path under the API's prefixes: a JSON 404, counted as a call when the key is valid."""

    def get(self, request, *args, **kwargs):
        raise exceptions.NotFound("No such API endpoint.")

    post = put = patch = delete = options = get
