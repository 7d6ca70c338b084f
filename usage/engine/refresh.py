"""Stale marks and their resolution: how the stored aggregates stay fresh after every write.

Every write of jobs or pricing adds ``StaleMonth`` marks for the organisation-months it touched,
in the same transaction. ``usage_refresh`` resolves the marks of one organisation: it brings the
derived columns of ``Job`` (``tier``, ``is_free``) up to date for those months and rewrites their
``MonthlyUsage``/``LanguageUsage`` rows. Writers call it at the end of each batch, and every read
calls it first, so a read never sees a stale month.
"""

import datetime as dt
from array import array
from collections.abc import Collection, Iterable

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organisation
from portal.db import prepared_cursor
from usage.models import StaleMonth

from .locks import job_writes_lock
from .recompute import RecomputeResult, recompute_after_writes

OrgMonth = tuple[int, dt.date]


def usage_mark_stale(*, organisation_id: int, months: Iterable[dt.date] | None) -> None:
    """Record that these months of the organisation (None: all of them) need recomputing."""
    if months is None:
        StaleMonth.objects.create(organisation_id=organisation_id, month=None)
        return
    StaleMonth.objects.bulk_create(
        StaleMonth(organisation_id=organisation_id, month=month) for month in sorted(set(months))
    )


def stale_months_mark(touched: Iterable[OrgMonth]) -> None:
    """One stale mark per organisation-month: on PostgreSQL one prepared statement of two arrays,
    elsewhere one statement run for each mark."""
    table = connection.ops.quote_name(StaleMonth._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    marks = sorted(touched)
    if connection.vendor == "postgresql":
        with prepared_cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (organisation_id, month, created_at) "  # noqa: S608 (a constant name)
                "SELECT o, m, %s FROM unnest(%s::int8[], %s::date[]) AS t(o, m)",
                [now, [organisation_id for organisation_id, _ in marks], [month for _, month in marks]],
            )
        return
    adapt_date = connection.ops.adapt_datefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (organisation_id, month, created_at) VALUES (%s, %s, %s)",  # noqa: S608
            [(organisation_id, adapt_date(month), now) for organisation_id, month in marks],
        )


def stale_marks_exist_sql(organisation_pk: str) -> str:
    """An SQL expression: whether the organisation whose primary key is ``organisation_pk`` (a quoted
    column of the caller's statement) has stale marks; one probe of the marks' index. A read that
    evaluates it in the statement that loads the organisation's ``usage_version`` and finds none
    may skip ``usage_refresh``: that version then covers every write committed before it."""
    q = connection.ops.quote_name
    organisation_column = q(StaleMonth._meta.get_field("organisation").column)
    # Only quoted identifiers from the model's metadata and the caller's column are interpolated.
    return (
        f"EXISTS (SELECT 1 FROM {q(StaleMonth._meta.db_table)} stale "  # noqa: S608
        f"WHERE stale.{organisation_column} = {organisation_pk})"
    )


def usage_refresh(*, organisation_id: int) -> RecomputeResult | None:
    """Resolve the organisation's stale marks, if any; costs one query when there are none."""
    return usage_refresh_organisations(organisation_ids=[organisation_id])


def usage_refresh_organisations(*, organisation_ids: Collection[int]) -> RecomputeResult | None:
    """Resolve the stale marks of several organisations in one recompute (the end of an import)."""
    if not StaleMonth.objects.filter(organisation_id__in=organisation_ids).exists():
        return None
    with transaction.atomic():
        # No job of these organisations is written while their usage is recomputed (the writers'
        # lock, taken first, in one order), and recomputes of an organisation are serialised by a
        # lock on its row that still lets writers reference it (NO KEY UPDATE).
        job_writes_lock(organisation_ids=organisation_ids)
        locked = (
            Organisation.objects.select_for_update(no_key=True).filter(pk__in=organisation_ids).order_by("pk")
        )
        list(locked.values_list("pk"))
        marks = StaleMonth.objects.filter(organisation_id__in=organisation_ids)
        # Exactly the marks seen now are deleted at the end, so one added meanwhile survives. An
        # import leaves a mark per batch and month: keep their ids compact, the months distinct.
        mark_ids = array("q", marks.values_list("id", flat=True).iterator(chunk_size=10_000))
        if not mark_ids:
            return None
        scope: dict[int, set[dt.date] | None] = {}
        for organisation_id, month in (
            marks.filter(id__lte=max(mark_ids)).values_list("organisation_id", "month").distinct()
        ):
            if month is None or (organisation_id in scope and scope[organisation_id] is None):
                scope[organisation_id] = None
            else:
                scope.setdefault(organisation_id, set()).add(month)
        result = recompute_after_writes(scope)
        for start in range(0, len(mark_ids), 500):
            StaleMonth.objects.filter(id__in=mark_ids[start : start + 500].tolist()).delete()
    return result
