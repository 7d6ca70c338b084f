"""Test doubles: a scripted portal for ``httpx.MockTransport``, a fake clock, sample bodies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from usage_portal_client import _json
from usage_portal_client._retry import Clock

API_KEY = "upk_testlookup0_secret"
BASE_URL = "http://portal.test"

# Money with trailing zeros and more digits than a float keeps, as the portal writes it.
MONTHLY_TEXT = """{"period":{"start_month":"2025-01","end_month":"2025-02"},\
"totals":{"jobs":108,"transcription_tokens":1672,"note_tokens":2905,"base_cost":0.07482,\
"final_cost":0.07482,"savings":0.00000,"effective_discount_percentage":0.00,"free_jobs_left":0},\
"monthly_breakdown":[{"month":"2025-01","jobs":108,"transcription_tokens":1672,"note_tokens":2905,\
"base_cost":0.07482,"final_cost":0.07482,"savings":0.00000,"current_tier_discount":0.00,\
"tiers":{"tier1":108,"tier2":0,"tier3":0,"tier4":0}},{"month":"2025-02","jobs":0,\
"transcription_tokens":0,"note_tokens":0,"base_cost":0.00000,"final_cost":0.00000,"savings":0.00000,\
"current_tier_discount":0.00,"tiers":{"tier1":0,"tier2":0,"tier3":0,"tier4":0}}],\
"api_keys":{"some api key":{"jobs":107,"tokens":{"transcription":1520,"note_generation":2715},\
"costs":{"base":0.06950,"final":0.06950,"savings":0.00000},"tiers":{"tier1":107,"tier2":0,"tier3":0,\
"tier4":0}},"another api key":{"jobs":1,"tokens":{"transcription":152,"note_generation":190},\
"costs":{"base":0.00532,"final":0.00532,"savings":0.00000},"tiers":{"tier1":1,"tier2":0,"tier3":0,\
"tier4":0}}}}"""

ALL_TIME_TEXT = """{"org_id":"org_abc123","period":"all_time","total_jobs":142,"completed_jobs":138,\
"total_duration_seconds":49320,"jobs_by_language":{"Hindi":58,"Tamil":44,"Telugu":22,"Punjabi":18},\
"api_calls":612}"""


def job_body(index: int, **overrides: Any) -> dict[str, Any]:
    """A JOB object of ``GET /api/v1/jobs`` as the portal writes it."""
    body = {
        "external_id": f"j-{index}",
        "created_at": f"2025-01-{index + 1:02d}T10:00:00Z",
        "api_key": "some api key",
        "language": "Hindi",
        "audio_duration_seconds": 312,
        "status": "completed",
        "has_transcript": True,
        "has_lrc": True,
        "transcription_tokens": 14,
        "note_tokens": 27,
        "tier": "tier1",
        "is_free": False,
        "base_cost": Decimal("0.00068"),
        "final_cost": Decimal("0.00068"),
        "savings": Decimal("0"),
    }
    body.update(overrides)
    return body


def json_response(
    status: int, text: str | dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    """A response whose body is ``text`` verbatim, or a dict written with exact decimals."""
    content = text if isinstance(text, str) else _json.dumps(text)
    return httpx.Response(
        status, content=content.encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )


Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass
class FakePortal:
    """Answers requests from a script: each step a response, an exception to raise, or a function."""

    steps: list[Step] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def answer(self, *steps: Step) -> FakePortal:
        self.steps.extend(steps)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if not self.steps:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        return self(request)


@dataclass
class FakeClock:
    """Records the waits instead of waiting; ``now`` is fixed and the jitter draw is ``jitter``."""

    now: float = 1_750_000_000.0
    jitter: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def as_clock(self) -> Clock:
        return Clock(
            sleep=self.sleep, async_sleep=self.async_sleep, now=lambda: self.now, random=lambda: self.jitter
        )
