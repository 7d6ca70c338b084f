"""What the usage admin pages share: counts that stay fast on millions of rows, and filters and
search that build index-friendly conditions."""

import datetime as dt
import json
from functools import cached_property

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet

from accounts.models import Organisation
from usage.models import Job, LanguageUsage
from usage.months import current_month, format_month, month_bounds, month_of, month_range, parse_month

LAST_MONTH = dt.date(9999, 12, 1)


class EstimatedCountPaginator(Paginator):
    """Counts big PostgreSQL results from the planner's statistics instead of counting rows.

    ``COUNT(*)`` over millions of rows scans them on every page view. Unfiltered, the estimate is
    ``pg_class.reltuples`` (kept by ANALYZE and autovacuum); filtered, it is the row estimate of
    the query's plan. Either is used only when it says ``exact_below`` rows or more, and then
    ``is_estimate`` is set; smaller results, and every result on other databases, are counted.
    """

    exact_below = 50_000
    is_estimate = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if (
            isinstance(queryset, QuerySet)
            and connections[queryset.db].vendor == "postgresql"
            and not queryset.query.is_empty()
        ):
            estimate = self._estimate(queryset)
            if estimate is not None and estimate >= self.exact_below:
                self.is_estimate = True
                return estimate
        return super().count

    @staticmethod
    def _estimate(queryset: QuerySet) -> int | None:
        connection = connections[queryset.db]
        with connection.cursor() as cursor:
            if not queryset.query.where:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [connection.ops.quote_name(queryset.model._meta.db_table)],
                )
                row = cursor.fetchone()
                return int(row[0]) if row and row[0] >= 0 else None
            sql, params = queryset.order_by().query.sql_with_params()
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])


class EstimatingChangeList(ChangeList):
    """A change list that corrects an estimated count once a page shows the list's end.

    A page with some rows but fewer than a full page is the last one, so the count is then
    known exactly; this keeps a planner's overestimate from offering pages that do not exist. (An
    empty page past the end only says the count is smaller, so it keeps the estimate.)
    """

    def get_results(self, request):
        super().get_results(request)
        paginator = self.paginator
        if not getattr(paginator, "is_estimate", False):
            return
        shown = len(self.result_list)
        if shown < self.list_per_page and (shown or self.page_num == 1):
            exact = (self.page_num - 1) * self.list_per_page + shown
            paginator.__dict__["count"] = exact
            paginator.__dict__.pop("num_pages", None)
            paginator.is_estimate = False
            self.result_count = exact
            self.multi_page = exact > self.list_per_page
            self.can_show_all = exact <= self.list_max_show_all


class EstimatedCountMixin:
    """Big lists: no full count next to the filtered one, estimated counts when large, and no
    "Show counts" link (it counts every choice of every filter over the whole table)."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator

    def get_changelist(self, request, **kwargs):
        return EstimatingChangeList


def _organisation_pk(org_id: str) -> int | None:
    return Organisation.objects.filter(org_id=org_id).values_list("pk", flat=True).first()


def _job_months() -> list:
    """Every month from the first job's to the later of the last job's and this month, newest
    first. Two index lookups, whatever the number of jobs."""
    created = Job.objects.order_by("created_at").values_list("created_at", flat=True)
    first, last = created.first(), created.last()
    if first is None:
        return [current_month()]
    return list(reversed(month_range(month_of(first), max(month_of(last), current_month()))))


def _distinct_languages() -> list[str]:
    """The languages that have stored usage, in order.

    A loose index scan (one index probe per language) over ``LanguageUsage``: the list is needed
    on every job list page, and neither the job table nor the aggregate table should be read in
    full for it.
    """
    connection = connections[LanguageUsage.objects.db]
    table = connection.ops.quote_name(LanguageUsage._meta.db_table)
    # The table name comes from model metadata, never from the request.
    sql = f"""
        WITH RECURSIVE languages(language) AS (
            SELECT MIN(language) FROM {table}
            UNION ALL
            SELECT (SELECT MIN(language) FROM {table} WHERE language > languages.language)
            FROM languages WHERE languages.language IS NOT NULL
        )
        SELECT language FROM languages WHERE language IS NOT NULL
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


class OrganisationFilter(admin.SimpleListFilter):
    """``?org_id=org_…``: one organisation's rows. Shown only while in use (links from the
    organisation pages set it), since listing every organisation would not scale."""

    title = "organisation"
    parameter_name = "org_id"

    def lookups(self, request, model_admin):
        value = self.value()
        if not value:
            return []
        organisation = Organisation.objects.filter(org_id=value).first()
        self._organisation_pk = organisation.pk if organisation else None
        return [(value, str(organisation) if organisation else value)]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if self._organisation_pk is None:
            return queryset.none()
        return queryset.filter(organisation_id=self._organisation_pk)


class MonthFilter(admin.SimpleListFilter):
    """``?month=YYYY-MM`` on the ``month`` column of an aggregate table."""

    title = "month"
    parameter_name = "month"

    def lookups(self, request, model_admin):
        return [(format_month(month), format_month(month)) for month in _job_months()]

    def month(self):
        try:
            return parse_month(self.value())
        except ValueError as exc:
            raise IncorrectLookupParameters(str(exc)) from exc

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(month=self.month())


class JobMonthFilter(MonthFilter):
    """``?month=YYYY-MM`` on jobs, as a ``created_at`` range: the same jobs as ``month=``, but an
    index range scan in the list's own order."""

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        month = self.month()
        if month == LAST_MONTH:
            # The month after it is past the year 9999, which no date can hold.
            return queryset.filter(created_at__gte=dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC))
        start, end = month_bounds(month)
        return queryset.filter(created_at__gte=start, created_at__lt=end)


class LanguageFilter(admin.SimpleListFilter):
    title = "language"
    parameter_name = "language"

    def lookups(self, request, model_admin):
        return [(language, language) for language in _distinct_languages()]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(language=self.value())


class OrganisationIdSearchMixin:
    """Search by exact organisation id: one indexed lookup, no ``LIKE`` across a join."""

    search_fields = ("=organisation__org_id",)
    search_help_text = "Exact organisation id (org_…)."

    def search_condition(self, term: str) -> Q:
        organisation_pk = _organisation_pk(term)
        return Q(organisation_id=organisation_pk) if organisation_pk is not None else Q(pk__in=[])

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(self.search_condition(term)), False
