"""When to try a request again, and how long to wait first (pure, apart from the default clock).

Only failures that another attempt can cure are retried: no answer at all (a connection error or
a timeout), ``429 Too Many Requests`` and ``5xx``. Everything else, ``401`` and ``403`` above all,
is final. Every retried request reaches the portal as one more request, so with a customer key
it is one more API call of that key.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: A ``Retry-After`` longer than this is not waited for: the error is raised at once instead.
MAX_RETRY_AFTER = 60.0
#: The first wait without ``Retry-After``; it doubles at each retry up to ``MAX_BACKOFF``.
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
#: The random share taken off each backoff, so that many clients do not retry in step.
JITTER = 0.25


def is_retryable_status(status_code: int) -> bool:
    """True for the statuses worth another attempt: 429 and every 5xx."""
    return status_code == 429 or status_code >= 500


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header, or None when absent or unreadable.

    The header is either a number of seconds or an HTTP date; ``now`` is the current Unix time,
    against which a date is measured. A date in the past means 0.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return None
    return seconds


def retry_delay(*, retries_done: int, retry_after: float | None, jitter: float) -> float | None:
    """The wait before the next attempt, or None when the request must not be retried.

    With ``Retry-After`` the wait is exactly what the server asked, unless that is more than
    ``MAX_RETRY_AFTER``: then None (waiting longer than a minute inside a call is worse than
    telling the caller). Without it, exponential backoff (0.5 s, 1 s, 2 s, … up to 8 s) shortened
    by up to ``JITTER`` of itself; ``jitter`` is a random number in [0, 1).
    """
    if retry_after is not None:
        return retry_after if retry_after <= MAX_RETRY_AFTER else None
    backoff = min(INITIAL_BACKOFF * 2**retries_done, MAX_BACKOFF)
    return backoff * (1 - JITTER * jitter)


@dataclass(frozen=True)
class Clock:
    """What retrying needs from the outside world; tests pass a fake one to the clients."""

    sleep: Callable[[float], None] = time.sleep
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    now: Callable[[], float] = time.time
    random: Callable[[], float] = random.random
