"""The anchor endpoint: a key check as bare as DRF allows, against the portal's own key table."""

import hmac

from django.conf import settings
from django.db import connection
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.keys import key_digest, parse_lookup

# One statement: the key by its unique (indexed) lookup, with its organisation by primary key.
KEY_SQL = """
    SELECT k.digest, k.revoked_at IS NULL, o.is_active, o.org_id
    FROM accounts_apikey k JOIN accounts_organisation o ON o.id = k.organisation_id
    WHERE k.lookup = %s
"""


class AnchorView(APIView):
    """``GET /anchor`` with ``Authorization: Bearer <key>``: answers ``{"org_id": …}`` like the
    portal's ``/api/v1/ping``.

    The key is parsed and hashed exactly as the portal does (``accounts.keys``: the lookup part,
    an HMAC-SHA256 digest under ``SECRET_KEY``, compared in constant time); an unknown, malformed
    or revoked key answers 401 and a key of an inactive organisation 403. Nothing else: no call
    counting, throttling, last-used time or middleware.
    """

    def get(self, request):
        scheme, _, plaintext = request.headers.get("Authorization", "").partition(" ")
        lookup = parse_lookup(plaintext) if scheme.lower() == "bearer" else None
        row = None
        if lookup is not None:
            with connection.cursor() as cursor:
                cursor.execute(KEY_SQL, [lookup])
                row = cursor.fetchone()
        if row is None:
            return Response({"detail": "Invalid API key."}, status=401)
        digest, unrevoked, active, org_id = row
        if not (
            hmac.compare_digest(key_digest(plaintext, signing_key=settings.SECRET_KEY), digest) and unrevoked
        ):
            return Response({"detail": "Invalid API key."}, status=401)
        if not active:
            return Response({"detail": "This API key's organisation is inactive."}, status=403)
        return Response({"org_id": org_id})
