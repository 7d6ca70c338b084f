"""Typed, frozen results: the contracts' JSON objects with their field names as attributes.

Counts are ``int``, money and percentages ``Decimal`` (read from the JSON digits, never through a
float), ``tiers``, ``api_keys`` and ``jobs_by_language`` are ``dict``, lists are tuples.
``to_dict()`` gives back the JSON object the result was read from (numbers as ``Decimal``), and
``to_json()`` its text with the same digits. A field the portal adds later is kept in
``to_dict()`` though it has no attribute yet.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from . import _json

M = TypeVar("M", bound="Model")


# Readers and writers of single JSON values ---------------------------------------------------


def _same(value: Any) -> Any:
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _decimal(value: Any) -> Decimal:
    """A JSON number as ``Decimal``: ``_json.loads`` made fractions decimals; integers convert exactly."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise TypeError(f"expected a number, got {value!r}")


def _nullable(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else read(value)


def _dict_of(read: Callable[[Any], Any]) -> Callable[[Any], dict[str, Any]]:
    def read_dict(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected an object, got {value!r}")
        return {_str(key): read(item) for key, item in value.items()}

    return read_dict


def _tuple_of(read: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    def read_list(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list, got {value!r}")
        return tuple(read(item) for item in value)

    return read_list


def _dump_models(value: Any) -> Any:
    """Write back a value holding models (alone, in a tuple or in a dict) as plain JSON values."""
    if isinstance(value, Model):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_dump_models(item) for item in value]
    if isinstance(value, dict):
        return {key: _dump_models(item) for key, item in value.items()}
    return value


def _field(
    read: Callable[[Any], Any],
    write: Callable[[Any], Any] = _dump_models,
    *,
    optional: bool = False,
    verbatim: bool = False,
) -> Any:
    """Declare a JSON field: ``read`` checks and converts the JSON value, ``write`` converts back.

    ``optional``: the key may be absent (the attribute is then None, and ``to_dict()`` leaves the
    key out again). ``verbatim``: ``to_dict()`` gives back the original JSON value as long as the
    attribute still equals what it was read as (for timestamps, whose text has several spellings).
    """
    metadata = {"read": read, "write": write, "optional": optional, "verbatim": verbatim}
    if optional:
        return dataclasses.field(default=None, metadata=metadata)
    return dataclasses.field(metadata=metadata)


# The base class -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Model:
    """A JSON object of the portal's API as a frozen, typed value.

    Subclasses declare their fields with ``_field``; ``from_dict`` reads a JSON object (raising
    ``ValueError`` on one that does not fit) and ``to_dict`` writes it back.
    """

    _extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    _absent: frozenset[str] = dataclasses.field(default=frozenset(), repr=False, compare=False)
    _verbatim: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    _PRIVATE: ClassVar[frozenset[str]] = frozenset({"_extra", "_absent", "_verbatim"})

    @classmethod
    def _json_fields(cls) -> Iterator[dataclasses.Field[Any]]:
        return (field for field in dataclasses.fields(cls) if field.name not in cls._PRIVATE)

    @classmethod
    def from_dict(cls: type[M], data: Any) -> M:
        """Read ``data`` (a JSON object as parsed by ``_json.loads``) into a ``cls``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {data!r}")
        values: dict[str, Any] = {}
        absent: set[str] = set()
        verbatim: dict[str, Any] = {}
        for field in cls._json_fields():
            if field.name not in data:
                if field.metadata["optional"]:
                    absent.add(field.name)
                    continue
                raise ValueError(f"{cls.__name__}: the field {field.name!r} is missing")
            try:
                values[field.name] = field.metadata["read"](data[field.name])
            except (TypeError, ValueError) as error:
                raise ValueError(f"{cls.__name__}.{field.name}: {error}") from error
            if field.metadata["verbatim"]:
                verbatim[field.name] = data[field.name]
        known = {field.name for field in cls._json_fields()}
        extra = {key: copy.deepcopy(value) for key, value in data.items() if key not in known}
        return cls(**values, _extra=extra, _absent=frozenset(absent), _verbatim=verbatim)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object this result stands for; numbers with a fraction are ``Decimal``."""
        body: dict[str, Any] = {}
        for field in self._json_fields():
            value = getattr(self, field.name)
            if field.name in self._absent and value is None:
                continue
            original = self._verbatim.get(field.name, _NOTHING)
            if original is not _NOTHING and field.metadata["read"](original) == value:
                body[field.name] = original
            else:
                body[field.name] = field.metadata["write"](value)
        body.update(copy.deepcopy(dict(self._extra)))
        return body

    def to_json(self, *, indent: int | None = None) -> str:
        """``to_dict()`` as JSON text, money written with exactly its digits (``0.07482``)."""
        return _json.dumps(self.to_dict(), indent=indent)


_NOTHING = object()


# GET /usage (contracts/monthly-usage.md) -------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Period(Model):
    """The months a monthly report covers, both ``YYYY-MM`` and inclusive."""

    start_month: str = _field(_str)
    end_month: str = _field(_str)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Totals(Model):
    """The whole period: jobs, tokens, money, and the free jobs left (all time)."""

    jobs: int = _field(_int)
    transcription_tokens: int = _field(_int)
    note_tokens: int = _field(_int)
    base_cost: Decimal = _field(_decimal)
    final_cost: Decimal = _field(_decimal)
    savings: Decimal = _field(_decimal)
    effective_discount_percentage: Decimal = _field(_decimal)
    free_jobs_left: int = _field(_int)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MonthUsage(Model):
    """One month of ``monthly_breakdown``; ``tiers`` maps every tier name of the plan to its jobs."""

    month: str = _field(_str)
    jobs: int = _field(_int)
    transcription_tokens: int = _field(_int)
    note_tokens: int = _field(_int)
    base_cost: Decimal = _field(_decimal)
    final_cost: Decimal = _field(_decimal)
    savings: Decimal = _field(_decimal)
    current_tier_discount: Decimal = _field(_decimal)
    tiers: dict[str, int] = _field(_dict_of(_int))


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeyTokens(Model):
    transcription: int = _field(_int)
    note_generation: int = _field(_int)


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeyCosts(Model):
    base: Decimal = _field(_decimal)
    final: Decimal = _field(_decimal)
    savings: Decimal = _field(_decimal)


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeyUsage(Model):
    """One API key's share of the period (a value of ``MonthlyUsage.api_keys``)."""

    jobs: int = _field(_int)
    tokens: KeyTokens = _field(KeyTokens.from_dict)
    costs: KeyCosts = _field(KeyCosts.from_dict)
    tiers: dict[str, int] = _field(_dict_of(_int))


@dataclasses.dataclass(frozen=True, kw_only=True)
class MonthlyUsage(Model):
    """The body of ``GET /usage``: totals, every month of the period, every key with jobs in it."""

    period: Period = _field(Period.from_dict)
    totals: Totals = _field(Totals.from_dict)
    monthly_breakdown: tuple[MonthUsage, ...] = _field(_tuple_of(MonthUsage.from_dict))
    api_keys: dict[str, KeyUsage] = _field(_dict_of(KeyUsage.from_dict))


# GET /api/v1/usage (contracts/all-time-usage.md) ----------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class AllTimeUsage(Model):
    """The body of ``GET /api/v1/usage``: all-time jobs sent with a key, and all API calls."""

    org_id: str = _field(_str)
    period: str = _field(_str)
    total_jobs: int = _field(_int)
    completed_jobs: int = _field(_int)
    total_duration_seconds: int = _field(_int)
    jobs_by_language: dict[str, int] = _field(_dict_of(_int))
    api_calls: int = _field(_int)


# GET /api/v1/jobs -----------------------------------------------------------------------------


def _datetime(value: Any) -> dt.datetime:
    return _json.parse_datetime(_str(value))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job(Model):
    """One job of ``GET /api/v1/jobs``, with its tier and exact (unrounded) per-job money."""

    external_id: str = _field(_str)
    created_at: dt.datetime = _field(_datetime, _json.format_datetime, verbatim=True)
    api_key: str | None = _field(_nullable(_str))
    language: str = _field(_str)
    audio_duration_seconds: int = _field(_int)
    status: str = _field(_str)
    has_transcript: bool = _field(_bool)
    has_lrc: bool = _field(_bool)
    transcription_tokens: int = _field(_int)
    note_tokens: int = _field(_int)
    tier: str = _field(_str)
    is_free: bool = _field(_bool)
    base_cost: Decimal = _field(_decimal)
    final_cost: Decimal = _field(_decimal)
    savings: Decimal = _field(_decimal)


@dataclasses.dataclass(frozen=True, kw_only=True)
class JobPage(Model):
    """One page of ``GET /api/v1/jobs``: its jobs and the cursor of the next page (None: last)."""

    data: tuple[Job, ...] = _field(_tuple_of(Job.from_dict))
    next_cursor: str | None = _field(_nullable(_str))


# POST /api/v1/ingest/jobs ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestError(Model):
    """One problem of a rejected item: the field it is about (None for the item as a whole)."""

    field: str | None = _field(_nullable(_str), optional=True)
    message: str = _field(_str)


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestItemResult(Model):
    """What became of one item: ``status`` is created, updated, unchanged or rejected."""

    index: int = _field(_int)
    external_id: str | None = _field(_nullable(_str), optional=True)
    status: str = _field(_str)
    errors: tuple[IngestError, ...] | None = _field(
        _nullable(_tuple_of(IngestError.from_dict)), optional=True
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestResult(Model):
    """The answer to ``POST /api/v1/ingest/jobs``: counts, and one result per item in order."""

    created: int = _field(_int)
    updated: int = _field(_int)
    unchanged: int = _field(_int)
    rejected: int = _field(_int)
    results: tuple[IngestItemResult, ...] = _field(_tuple_of(IngestItemResult.from_dict))
