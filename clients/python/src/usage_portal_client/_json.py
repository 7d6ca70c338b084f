"""JSON in and out without binary floats: every JSON number with a fraction is a ``Decimal``.

The portal writes money as JSON numbers of exactly its rounded digits (``0.07482``,
``0.00000``); reading them through ``float`` would lose that, so ``loads`` reads them as
``Decimal`` and ``dumps`` writes a ``Decimal`` back as the same digits.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def loads(text: str | bytes) -> Any:
    """Parse JSON text; numbers with a fraction or exponent become ``Decimal``, integers ``int``."""
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON text of ``value``; a ``Decimal`` is written as a number of exactly its digits.

    Accepts what ``loads`` returns plus tuples and ``datetime`` (written as ISO 8601, ``Z`` for
    UTC). Non-finite decimals and floats are refused, as JSON has no such numbers.
    """
    return _encode(value, indent, 0)


def format_datetime(value: dt.datetime) -> str:
    """ISO 8601 as the portal writes it: ``2025-01-03T10:00:00Z`` for a UTC time."""
    text = value.isoformat()
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


def parse_datetime(text: str) -> dt.datetime:
    """Read an ISO 8601 timestamp such as ``2025-01-03T10:00:00Z``."""
    return dt.datetime.fromisoformat(text)


def _encode(value: Any, indent: int | None, level: int) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value} is not a JSON number")
        return json.dumps(value)
    if value is None or isinstance(value, bool | int | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.datetime):
        return json.dumps(format_datetime(value))
    if isinstance(value, Mapping):
        parts = [
            f"{_encode(_key(key), indent, level + 1)}:{'' if indent is None else ' '}"
            f"{_encode(item, indent, level + 1)}"
            for key, item in value.items()
        ]
        return _join(parts, "{", "}", indent, level)
    if isinstance(value, list | tuple):
        return _join([_encode(item, indent, level + 1) for item in value], "[", "]", indent, level)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
    return key


def _join(parts: list[str], opening: str, closing: str, indent: int | None, level: int) -> str:
    if not parts:
        return opening + closing
    if indent is None:
        return opening + ",".join(parts) + closing
    inner = "\n" + " " * (indent * (level + 1))
    return opening + inner + ("," + inner).join(parts) + "\n" + " " * (indent * level) + closing
