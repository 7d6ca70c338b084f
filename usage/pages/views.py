"""Customer usage pages: the usage page and its CSV export, both from ``usage_report``; the
page's daily view from ``usage_daily``."""

import datetime as dt

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.selectors import OrganisationAccess
from accounts.views import organisation_page
from usage.months import current_month
from usage.selectors import usage_daily, usage_first_month, usage_report, usage_status_counts

from .csv_export import csv_filename, usage_csv
from .forms import DayMonthForm, UsageRangeForm, range_presets
from .presentation import daily_page
from .presentation import usage_page as build_usage_page


@require_GET
@organisation_page
def usage_page(request: HttpRequest, access: OrganisationAccess) -> HttpResponse:
    """The organisation's usage over the chosen months; a bad range re-shows the picker (400)."""
    today_month = current_month()
    form = UsageRangeForm.from_query(request.GET, today_month=today_month)
    context = {"access": access, "organisation": access.organisation, "form": form, "page": None}
    if not form.is_valid():
        context["presets"] = range_presets(today_month=today_month, selected=None)
        return render(request, "usage/usage_page.html", context, status=400)
    start, end = form.range
    report = usage_report(organisation=access.organisation, start_month=start, end_month=end)
    context["page"] = build_usage_page(report, today_month=today_month)
    context["statuses"] = usage_status_counts(
        organisation=access.organisation, start_month=start, end_month=end
    )
    day_form = DayMonthForm.from_query(request.GET, today_month=today_month, default=end)
    today = timezone.now().astimezone(dt.UTC).date()
    daily = usage_daily(
        organisation=access.organisation,
        month=day_form.month,
        last_day=today,
        plan=report.plan,
        refresh=False,
    )
    context["daily"] = daily_page(daily, today=today)
    context["day_form"] = day_form
    # Show the months in use, defaults included, rather than what the URL happened to say.
    context["form"] = UsageRangeForm(initial={"start": start, "end": end}, today_month=today_month)
    context["presets"] = range_presets(
        today_month=today_month,
        selected=(start, end),
        first_month=usage_first_month(organisation=access.organisation),
    )
    return render(request, "usage/usage_page.html", context)


@require_GET
@organisation_page
def usage_csv_download(request: HttpRequest, access: OrganisationAccess) -> HttpResponse:
    """The same range as the page, as a CSV attachment; a bad range is a 400 saying why."""
    today_month = current_month()
    form = UsageRangeForm.from_query(request.GET, today_month=today_month)
    if not form.is_valid():
        problems = [str(error) for errors in form.errors.values() for error in errors]
        return HttpResponse(
            "Cannot export this range: " + " ".join(problems) + "\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    start, end = form.range
    report = usage_report(organisation=access.organisation, start_month=start, end_month=end)
    response = HttpResponse(
        usage_csv(report, today_month=today_month), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{csv_filename(report)}"'
    return response
