"""Fixtures of the REST API tests: Bearer clients, job inputs, a pinned clock."""

import datetime as dt
import json
from decimal import Decimal

import pytest
import time_machine

from tests.factories import make_job

NOW = dt.datetime(2025, 3, 15, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _database(db):
    """Every test of the usage app may read or write the database."""


@pytest.fixture
def march_2025():
    """Pin the clock to 2025-03-15 12:00 UTC: the current month is 2025-03."""
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def bearer(client):
    """``bearer(key, path, params)``: GET ``path`` with ``Authorization: Bearer <key>``."""

    def get(key: str, path: str, params: dict | None = None, **extra):
        return client.get(path, params or {}, headers={"Authorization": f"Bearer {key}"}, **extra)

    return get


@pytest.fixture
def exact_json():
    """``exact_json(response)``: the body, with every number that has a fraction as a ``Decimal``."""

    def parse(response):
        return json.loads(response.content, parse_float=Decimal)

    return parse


@pytest.fixture
def job():
    """``job(organisation, created_at=..., api_key=None, **fields)``: a ``JobInput`` with defaults."""
    return make_job


@pytest.fixture
def mid_june_2025():
    """Pin the clock to 2025-06-15 12:00 UTC (modules make it autouse by importing it)."""
    with time_machine.travel(dt.datetime(2025, 6, 15, 12, 0, tzinfo=dt.UTC), tick=False):
        yield


@pytest.fixture
def as_member(client, member):
    """The test client, logged in as Acme's member."""
    client.force_login(member)
    return client
