"""Fixtures: clients wired to a scripted portal and a fake clock; no network, no Django, no waiting."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fakes import API_KEY, BASE_URL, FakeClock, FakePortal
from usage_portal_client import AsyncClient, Client


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch):
    """Tests see only the configuration they set themselves."""
    monkeypatch.delenv("USAGE_PORTAL_API_KEY", raising=False)
    monkeypatch.delenv("USAGE_PORTAL_BASE_URL", raising=False)


@pytest.fixture
def portal() -> FakePortal:
    return FakePortal()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(portal, clock):
    """A ``Client`` talking to ``portal`` with ``clock``; more options via ``make_client``."""
    http = httpx.Client(transport=httpx.MockTransport(portal))
    with Client(API_KEY, BASE_URL, http_client=http, _clock=clock.as_clock()) as made:
        yield made


@pytest.fixture
def make_client(portal, clock):
    def make(**options: Any) -> Client:
        return Client(
            options.pop("api_key", API_KEY),
            options.pop("base_url", BASE_URL),
            http_client=httpx.Client(transport=httpx.MockTransport(portal)),
            _clock=clock.as_clock(),
            **options,
        )

    return make


@pytest.fixture
def make_async_client(portal, clock):
    def make(**options: Any) -> AsyncClient:
        return AsyncClient(
            options.pop("api_key", API_KEY),
            options.pop("base_url", BASE_URL),
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(portal.handle_async)),
            _clock=clock.as_clock(),
            **options,
        )

    return make
