"""The bases of the REST endpoints: ``ApiKeyView`` (a customer's API key) and ``ServiceKeyView``
(the job platform's service key)."""

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from .authentication import BearerKeyAuthentication, HasApiKey, HasServiceKey, ServiceKeyAuthentication
from .renderers import ExactJSONRenderer
from .throttling import ApiKeyRateThrottle, AuthFailureLimit, ServiceKeyRateThrottle


class JSONOnlyNegotiation(BaseContentNegotiation):
    """Always answer JSON, whatever ``Accept`` says: the contracts define JSON bodies only."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ApiKeyView(APIView):
    """Base of the endpoints authenticated by an API key.

    In order, for every request:
    1. the Bearer key is checked (401 for a missing, malformed, unknown or revoked key, 403 for
       an inactive organisation); a 401 counts against the client address's failure budget, and
       once that is spent this window the failure is answered 429 (with ``Retry-After``) instead;
       a valid key is never refused for its address's failures;
    2. the per-key throttle (429 with ``Retry-After``), which every request with a valid key
       reaches (the customer API counts the call there, in the same Redis round trip, so 400,
       404, 405 and 429 answers are calls too), then the handler.
    Every response is JSON and carries ``Cache-Control: no-store``.
    """

    authentication_classes = [BearerKeyAuthentication]
    permission_classes = [HasApiKey]
    throttle_classes = [ApiKeyRateThrottle]
    renderer_classes = [ExactJSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation

    def initial(self, request, *args, **kwargs):
        self.now = timezone.now()
        super().initial(request, *args, **kwargs)

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if response.status_code == 401:
            wait = AuthFailureLimit().record(AuthFailureLimit.ident(self.request))
            if wait is not None:
                throttled = exceptions.Throttled(
                    wait=wait, detail="Too many failed authentications from this address."
                )
                return super().handle_exception(throttled)
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


class ServiceKeyView(ApiKeyView):
    """Base of the endpoints of the job platform, authenticated by a service key.

    The same order as ``ApiKeyView`` (failed-authentication budget, key check, throttle, handler)
    with a service key instead: 401 for a missing, malformed, unknown or revoked key, 403 for an
    organisation's API key, 429 past ``API_INGEST_THROTTLE_RATE``. ``request.user.scope`` holds
    the organisations the key may write (None: all). No request here is an API call.
    """

    authentication_classes = [ServiceKeyAuthentication]
    permission_classes = [HasServiceKey]
    throttle_classes = [ServiceKeyRateThrottle]
