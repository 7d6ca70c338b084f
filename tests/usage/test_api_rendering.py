"""Money leaves the portal as exact JSON numbers."""

import json
from decimal import Decimal

import pytest
from rest_framework.renderers import JSONRenderer

from portal.api.renderers import ExactJSONRenderer


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0.00001"), "0.00001"),
        (Decimal("0.00000"), "0.00000"),
        (Decimal("0.07592"), "0.07592"),
        (Decimal("15.15"), "15.15"),
        (Decimal("123456789012345678.12345"), "123456789012345678.12345"),
    ],
)
def test_decimals_are_written_with_exactly_their_digits(amount, text):
    rendered = ExactJSONRenderer().render({"money": amount})

    assert rendered == f'{{"money":{text}}}'.encode()
    assert json.loads(rendered, parse_float=Decimal)["money"] == amount


def test_drf_default_renderer_would_go_through_float():
    """Why the portal has its own renderer: DRF's loses digits and changes notation."""
    assert JSONRenderer().render({"money": Decimal("0.00001")}) == b'{"money":1e-05}'
    assert JSONRenderer().render({"money": Decimal("123456789012345678.12345")}) != (
        b'{"money":123456789012345678.12345}'
    )


def test_other_values_render_as_drf_does():
    rendered = ExactJSONRenderer().render(
        {"name": "Zoë", "jobs": 3, "ok": True, "none": None, "list": [1, "a"]}
    )

    assert json.loads(rendered) == {"name": "Zoë", "jobs": 3, "ok": True, "none": None, "list": [1, "a"]}
    assert ExactJSONRenderer().render(None) == b""
