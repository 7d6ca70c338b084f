"""Fixtures of the webhook tests: a real local receiver, private URLs allowed, a small plan."""

import http.server
import threading
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from usage.models import PricingPlan, PricingTier


@pytest.fixture(autouse=True)
def _database(db):
    """Every webhook test may use the database."""


@pytest.fixture
def allow_private(settings):
    """The local receiver lives on 127.0.0.1 over http: allowed only with this switch."""
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    return settings


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server in a thread; answers each POST with the next of ``statuses`` (the last one
    repeats) and keeps what it received."""

    url: str
    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[Received] = field(default_factory=list)
    extra_headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def receiver(allow_private):
    state = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the http.server API)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            state.requests.append(
                Received(path=self.path, headers={k.lower(): v for k, v in self.headers.items()}, body=body)
            )
            index = min(len(state.requests), len(state.statuses)) - 1
            self.send_response(state.statuses[index])
            for name, value in state.extra_headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def small_plan():
    """tier1 ranks 1-2, tier2 3-4 (10 %), tier3 from 5 (20 %): tiers reached within a few jobs."""
    plan = PricingPlan.objects.create(
        name="small", per_job_fee=Decimal("1"), transcription_rate=Decimal("0"), note_rate=Decimal("0")
    )
    for name, first_rank, discount in (("tier1", 1, 0), ("tier2", 3, 10), ("tier3", 5, 20)):
        PricingTier.objects.create(plan=plan, name=name, first_rank=first_rank, discount_percent=discount)
    return plan
