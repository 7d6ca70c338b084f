"""The OpenAPI text of the usage endpoints: descriptions, parameters and examples."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from portal.api.schema import ERROR_RESPONSES, ErrorSerializer

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

MONTH_PARAMETER = {
    "type": OpenApiTypes.STR,
    "location": OpenApiParameter.QUERY,
    "required": False,
    "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$",
}


INGEST_DESCRIPTION = """\
For the job platform, with a **service key** (`upsk_…`; an organisation's API key answers 403).
Pushes jobs as they are submitted and as their status changes.

**Body.** `{"jobs": [ITEM, …]}` sent as `application/json` (else 415): 1 to 1,000 items and at
most 1 MiB (else 413). An ITEM is exactly a line of `import_jobs` and is judged by the same
rules, field by field; an organisation outside the key's scope is reported as unknown. A body
that is not JSON, not an object, has no `jobs` list, an empty list, or an item that is not an
object answers 400 and nothing is judged.

**Answer.** One result per item, in request order, with every problem of a rejected item:
- `created`: the job was new and is now stored;
- `updated`: the job existed with other values and now has this item's (it keeps its place
  among jobs created at the same moment);
- `unchanged`: the job already held every value; nothing was written;
- `rejected`: the item is invalid and wrote nothing (`errors` lists why).

Valid items are written in one transaction in array order (which breaks ties of `created_at`).
The same `external_id` twice in one request: each item is judged against the job as the items
before it left it (e.g. `created` then `updated`), and the job ends with the last item's values
at the first item's place. What a 200 reports is in `/usage` and `/api/v1/usage` at the next
request. A 5xx writes nothing, so retrying any request is safe (a retried batch answers
`unchanged`). These requests are never API calls of an organisation.
"""

INGEST_REQUEST_EXAMPLE = {
    "jobs": [
        {
            "org_id": "org_abc123",
            "external_id": "j-1",
            "api_key": "some api key",
            "created_at": "2025-01-03T10:00:00Z",
            "language": "Hindi",
            "audio_duration_seconds": 312,
            "status": "completed",
            "has_transcript": True,
            "has_lrc": True,
            "transcription_tokens": 14,
            "note_tokens": 27,
        },
        {
            "org_id": "org_abc123",
            "external_id": "j-9",
            "api_key": None,
            "created_at": "2025-01-03T10:05:00Z",
            "language": "Tamil",
            "audio_duration_seconds": 60,
            "status": "done",
        },
    ]
}

INGEST_EXAMPLE = {
    "created": 1,
    "updated": 0,
    "unchanged": 0,
    "rejected": 1,
    "results": [
        {"index": 0, "external_id": "j-1", "status": "created"},
        {
            "index": 1,
            "external_id": "j-9",
            "status": "rejected",
            "errors": [
                {
                    "field": "status",
                    "message": (
                        "unknown status 'done' (expected one of completed, failed, processing, queued)"
                    ),
                }
            ],
        },
    ],
}

INGESTED_JOB_EXAMPLE = {
    **INGEST_REQUEST_EXAMPLE["jobs"][0],
    "month": "2025-01",
    "tier": "tier1",
    "is_free": False,
}


# The errors of the endpoints answered with a service key.
INGEST_ERROR_RESPONSES = {
    401: OpenApiResponse(
        ErrorSerializer,
        description="Missing, malformed, unknown or revoked service key (with `WWW-Authenticate: Bearer`).",
        examples=[
            OpenApiExample("Invalid key", value={"detail": "Invalid service key."}, status_codes=["401"])
        ],
    ),
    403: OpenApiResponse(
        ErrorSerializer,
        description="An organisation's API key was sent instead of a service key.",
        examples=[
            OpenApiExample(
                "Customer key",
                value={
                    "detail": "An organisation's API key cannot be used on this endpoint: use a service key."
                },
                status_codes=["403"],
            )
        ],
    ),
    429: OpenApiResponse(
        ErrorSerializer,
        description=(
            "Too many requests with this service key (`API_INGEST_THROTTLE_RATE`, default 6000 a "
            "minute), or too many failed authentications from this address. `Retry-After` gives "
            "the seconds to wait."
        ),
        examples=[
            OpenApiExample(
                "Throttled",
                value={"detail": "Request was throttled. Expected available in 12 seconds."},
                status_codes=["429"],
            )
        ],
    ),
    500: ERROR_RESPONSES[500],
}


JOBS_DESCRIPTION = """\
The jobs of your organisation (the organisation of the API key; never another) in one UTC month,
in rank order (creation time, then insertion order), each with its tier and its money.

**Parameters.** `month` (YYYY-MM; default the current month; a malformed, empty or future month
is rejected), `api_key` (a key name; `api_key=` given empty selects the jobs sent without a key;
an unknown name gives no jobs), `status` (`queued`, `processing`, `completed` or `failed`),
`language`, `limit` (1 to 1,000, default 100) and `cursor`. A bad parameter is answered 400 with
the parameter named. Other query parameters are ignored.

**Pages.** While `next_cursor` is not null, ask again with the same parameters and
`cursor=<next_cursor>`. A cursor is opaque and signed: it only works with the organisation,
month and filters it was made for (a changed or foreign cursor is a 400 naming `cursor`); `limit`
may change between pages.

**Money.** `base_cost`, `final_cost` and `savings` are exact (not rounded), so the jobs of a month
add up exactly to the month's unrounded figures in `GET /usage`. Free jobs have final cost 0.
Every request counts as one API call.
"""

JOBS_EXAMPLE = {
    "data": [
        {
            "external_id": "j-1001",
            "created_at": "2025-01-03T09:30:00Z",
            "api_key": "some api key",
            "language": "Hindi",
            "audio_duration_seconds": 312,
            "status": "completed",
            "has_transcript": True,
            "has_lrc": True,
            "transcription_tokens": 152,
            "note_tokens": 190,
            "tier": "tier1",
            "is_free": False,
            "base_cost": 0.00532,
            "final_cost": 0.00532,
            "savings": 0,
        },
        {
            "external_id": "j-1002",
            "created_at": "2025-01-03T09:41:07Z",
            "api_key": None,
            "language": "Tamil",
            "audio_duration_seconds": 95,
            "status": "failed",
            "has_transcript": False,
            "has_lrc": False,
            "transcription_tokens": 37,
            "note_tokens": 0,
            "tier": "tier1",
            "is_free": False,
            "base_cost": 0.00037,
            "final_cost": 0.00037,
            "savings": 0,
        },
    ],
    "next_cursor": "eyJxIjpbMSwiMjAyNS0wMSIsbnVsbCxudWxsLG51bGxdfQ:1u0Zx2:Qm9n",
}
