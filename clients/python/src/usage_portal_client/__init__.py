"""Python client of the Usage Portal's REST API.

::

    from usage_portal_client import Client

    client = Client()  # key from $USAGE_PORTAL_API_KEY, portal from $USAGE_PORTAL_BASE_URL
    usage_info = client.usage.get()  # optional start_month and end_month ("YYYY-MM")
    print(usage_info.totals.final_cost)
"""

from ._client import DEFAULT_BASE_URL, ENV_API_KEY, ENV_BASE_URL, AsyncClient, Client
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UsagePortalError,
)
from ._models import (
    AllTimeUsage,
    IngestError,
    IngestItemResult,
    IngestResult,
    Job,
    JobPage,
    KeyCosts,
    KeyTokens,
    KeyUsage,
    Model,
    MonthlyUsage,
    MonthUsage,
    Period,
    Totals,
)
from ._resources import AsyncJobList, JobList
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AllTimeUsage",
    "AsyncClient",
    "AsyncJobList",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "IngestError",
    "IngestItemResult",
    "IngestResult",
    "InternalServerError",
    "Job",
    "JobList",
    "JobPage",
    "KeyCosts",
    "KeyTokens",
    "KeyUsage",
    "Model",
    "MonthUsage",
    "MonthlyUsage",
    "NotFoundError",
    "PermissionDeniedError",
    "Period",
    "RateLimitError",
    "RequestTooLargeError",
    "Totals",
    "UsagePortalError",
    "__version__",
]
