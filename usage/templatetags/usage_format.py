"""Template filters that present usage figures; rounding goes through ``usage.pricing`` only."""

from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.utils.html import format_html

from usage import pricing

register = template.Library()


@register.filter
def money(amount) -> str:
    """Money rounded half-up to 5 places, with thousands separators: ``1,234.50000``."""
    if amount is None or amount == "":
        return ""
    return f"{pricing.present_money(Decimal(amount)):,f}"


@register.filter
def cash(amount, currency="USD") -> str:
    """Money in ``currency`` to two decimals, the exact 5-place figure on hover:
    ``<span class="money" title="1,234.56789 USD">$1,234.57</span>``."""
    if amount is None or amount == "":
        return ""
    amount = Decimal(amount)
    return format_html(
        '<span class="money" title="{}">{}</span>',
        pricing.present_money_in(amount, currency=currency, exact=True),
        pricing.present_money_in(amount, currency=currency),
    )


@register.filter
def percent(amount) -> str:
    """A percentage rounded half-up to 2 places, without the sign: ``12.50``."""
    if amount is None or amount == "":
        return ""
    return f"{pricing.present_percent(Decimal(amount)):f}"


@register.filter
def number(value) -> str:
    """A whole number with thousands separators: ``12,345``."""
    if value is None or value == "":
        return ""
    return f"{int(value):,}"


@register.filter
def hours(seconds) -> str:
    """Seconds as hours to one decimal place: ``12.5``."""
    value = (Decimal(int(seconds or 0)) / 3600).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{value:,f}"


@register.filter
def duration(seconds) -> str:
    """A readable audio duration: ``12.5 h`` from one hour up, ``42 min`` below, ``0 min`` for none."""
    seconds = int(seconds or 0)
    if seconds >= 3600:
        return f"{hours(seconds)} h"
    minutes = (Decimal(seconds) / 60).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{minutes} min"


@register.filter
def exact(amount) -> str:
    """Money as its exact decimal digits, unrounded and without exponent: ``0.013460000``."""
    if amount is None or amount == "":
        return ""
    return f"{Decimal(amount):f}"
