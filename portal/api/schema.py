"""OpenAPI pieces every REST endpoint shares: the error bodies and the response headers."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person to read.")


class ServerErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    error_id = serializers.CharField(help_text="Quote it to support: it identifies the error in our logs.")


ERROR_RESPONSES = {
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

RESPONSE_HEADERS = [
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
