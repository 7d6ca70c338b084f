"""Callbacks run at the end of every recompute, inside its transaction.

Apps that react to usage changes (the webhooks' event detection) register here from their
``AppConfig.ready``, so the engine calls them without importing them. A callback receives the
scope that was recomputed (organisation id -> months, None meaning all months), sees the
aggregates as they now stand, and runs while the organisations' rows are locked: whatever it
writes commits or rolls back with the recompute.
"""

import datetime as dt
from collections.abc import Callable

Scope = dict[int, set[dt.date] | None]
AfterRecompute = Callable[[Scope], None]

_after_recompute: list[AfterRecompute] = []


def after_recompute_register(callback: AfterRecompute) -> None:
    """Add ``callback``; registering the same function twice keeps one."""
    if callback not in _after_recompute:
        _after_recompute.append(callback)


def after_recompute_unregister(callback: AfterRecompute) -> None:
    if callback in _after_recompute:
        _after_recompute.remove(callback)


def after_recompute_run(scope: Scope) -> None:
    """Call every registered callback with ``scope`` (the recompute's caller holds the locks)."""
    for callback in list(_after_recompute):
        callback(scope)
