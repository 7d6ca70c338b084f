"""JSON rendering for the REST API."""

import simplejson
from rest_framework.renderers import JSONRenderer


class ExactJSONRenderer(JSONRenderer):
    """Render JSON with every ``Decimal`` written as a JSON number of exactly its digits.

    DRF's own encoder turns a ``Decimal`` into a ``float`` first (``1E-5`` becomes ``1e-05``,
    and digits beyond a double's precision are lost); money here must reach clients exactly as
    rounded, so decimals are written by simplejson from their decimal text instead.
    """

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return simplejson.dumps(
            data,
            use_decimal=True,
            default=self.encoder_class().default,
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode("utf-8")
