"""The customer drill-down and the team in a real headless Chromium: from a month's cost to the
jobs behind it, the daily view, inviting and managing people, and the pages at phone width.

Data is written through the services before the browser opens; the live server shares the test
database and this process's outbox (``django.core.mail.outbox``), where the invitation lands.
"""

import re
from decimal import Decimal

import pytest
from django.core import mail

from accounts.models import Invitation, Membership, User
from accounts.services import api_key_create
from tests.portal_data import build_usage_history
from usage.months import add_months, current_month, format_month
from usage.pricing import present_money_in
from usage.selectors import usage_report

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PAGE_LIMIT = 25


def log_in(page, live_server, *, username: str, password: str) -> None:
    """Log in through the real form and wait for the page it lands on."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("form button[type=submit]")


@pytest.fixture
def acme_months(acme):
    """Three months of jobs on two keys and the web: about 60 jobs a month, a few failed."""
    return build_usage_history(
        organisation=acme,
        key_names=["production", "staging"],
        last_month=current_month(),
        months=3,
        jobs_per_key_month=24,
        growth=3,
        web_jobs_per_month=10,
        calls_per_job=2,
    )


def _text(page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def _read_all_jobs(page) -> list[dict]:
    """Every row of the jobs table, following "Next" to the last page."""
    rows = []
    while True:
        rows.extend(
            page.eval_on_selector_all(
                "#jobs-table tbody tr[data-job]",
                """trs => trs.map(tr => ({
                    id: tr.dataset.job,
                    key: tr.cells[2].innerText.trim(),
                    language: tr.cells[3].innerText.trim(),
                    status: tr.cells[5].innerText.trim(),
                    final: tr.cells[13].title,
                }))""",
            )
        )
        following = page.locator("#next-page")
        if not following.count():
            return rows
        with page.expect_navigation():
            following.click()


def _exact_sum(rows: list[dict]) -> Decimal:
    return sum((Decimal(row["final"]) for row in rows), Decimal(0))


def test_from_a_months_cost_to_its_jobs_and_back(
    live_server, desktop, owner, acme, acme_months, artifacts_dir
):
    this_month = current_month()
    last_month = add_months(this_month, -1)
    key = api_key_create(organisation=acme, name="reporting").plaintext
    report = usage_report(organisation=acme, start_month=last_month, end_month=last_month)
    month_usage = report.months[0]
    page = desktop.new_page()
    log_in(page, live_server, username="olivia", password="owner-pass-123")

    # The usage page's month row links to that month's jobs.
    row = page.locator(f"#monthly-table tr[data-month='{format_month(last_month)}']")
    shown_jobs = _count(row.locator("td").nth(0).inner_text())
    shown_final = row.locator("td .money").nth(1).get_attribute("title")
    assert shown_jobs == month_usage.jobs
    with page.expect_navigation():
        row.locator("th a").click()
    assert page.url.endswith(f"/orgs/org_acme/jobs/?month={format_month(last_month)}")
    assert _text(page, "#jobs-title") == f"Jobs of {format_month(last_month)}"
    page.screenshot(path=str(artifacts_dir / "jobs-desktop.png"), full_page=True)

    # Pagination: a smaller page size, then "Next" to the end; no job twice, none missing.
    page.goto(f"{live_server.url}/orgs/org_acme/jobs/?month={format_month(last_month)}&limit={PAGE_LIMIT}")
    assert page.locator("#jobs-table tbody tr[data-job]").count() == PAGE_LIMIT
    assert page.locator("#first-page").count() == 0
    rows = _read_all_jobs(page)
    assert page.locator("#first-page").is_visible()
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == shown_jobs
    # The jobs add up, to the last digit, to the month on the page and in GET /usage.
    total = _exact_sum(rows)
    assert total == month_usage.final_cost
    assert present_money_in(total, currency="USD", exact=True) == shown_final
    api = page.request.get(
        f"{live_server.url}/usage?start_month={format_month(last_month)}&end_month={format_month(last_month)}",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert api.status == 200
    assert api.json()["totals"]["jobs"] == len(rows)
    assert Decimal(str(api.json()["totals"]["final_cost"])) == present_money_in_5(total)

    # Filters: one key's failed jobs only, kept from page to page.
    page.goto(f"{live_server.url}/orgs/org_acme/jobs/?month={format_month(last_month)}")
    page.select_option("#id_api_key", "production")
    page.select_option("#id_status", "failed")
    with page.expect_navigation():
        page.click(".range-form button[type=submit]")
    assert "api_key=production" in page.url and "status=failed" in page.url
    failed = _read_all_jobs(page)
    expected_failed = sum(1 for row in rows if row["key"] == "production" and row["status"] == "failed")
    assert expected_failed > 0
    assert len(failed) == expected_failed
    assert {(row["key"], row["status"]) for row in failed} == {("production", "failed")}
    assert page.locator("#id_api_key").input_value() == "production"

    # The usage page's key and language links open the matching jobs with the same numbers.
    page.goto(f"{live_server.url}/orgs/org_acme/usage/?start={format_month(last_month)}&end={format_month(last_month)}")
    key_row = page.locator("#keys-table tr[data-key='staging']")
    key_jobs = _count(key_row.locator("td").nth(0).inner_text())
    with page.expect_navigation():
        key_row.locator("th a").click()
    assert "api_key=staging" in page.url and f"month={format_month(last_month)}" in page.url
    key_rows = _read_all_jobs(page)
    assert len(key_rows) == key_jobs == sum(1 for row in rows if row["key"] == "staging")
    assert {row["key"] for row in key_rows} == {"staging"}

    page.goto(f"{live_server.url}/orgs/org_acme/usage/?start={format_month(last_month)}&end={format_month(last_month)}")
    language_row = page.locator("#languages-table tbody tr").first
    language = language_row.locator("th").inner_text().strip()
    language_jobs = _count(language_row.locator("td").first.inner_text())
    with page.expect_navigation():
        language_row.locator("th a").click()
    language_rows = _read_all_jobs(page)
    assert len(language_rows) == language_jobs == sum(1 for row in rows if row["language"] == language)
    assert {row["language"] for row in language_rows} == {language}

    # A bad filter is a form error naming the parameter, not a crash.
    response = page.goto(f"{live_server.url}/orgs/org_acme/jobs/?status=lost")
    assert response.status == 400
    assert "status:" in _text(page, "#jobs-errors")


def _five_places(title: str) -> Decimal:
    """The amount of a money cell's hover text, ``1,234.56789 USD``."""
    return Decimal(title.split()[0].replace(",", ""))


def present_money_in_5(amount: Decimal) -> Decimal:
    """The 5-place figure of the JSON API, as a Decimal."""
    return _five_places(present_money_in(amount, currency="USD", exact=True))


def test_the_daily_view_adds_up_to_the_month(live_server, desktop, owner, acme, acme_months, artifacts_dir):
    last_month = add_months(current_month(), -1)
    month = format_month(last_month)
    page = desktop.new_page()
    log_in(page, live_server, username="olivia", password="owner-pass-123")

    page.fill("#id_day_month", month)
    with page.expect_navigation():
        page.click("#daily form button[type=submit]")
    assert f"day_month={month}" in page.url
    assert month in _text(page, "#daily-title") or last_month.strftime("%B %Y") in _text(page, "#daily-title")
    assert page.locator("#daily svg").first.is_visible()
    assert page.locator("#daily rect.bar-jobs").count() > 0
    days = page.eval_on_selector_all(
        "#daily-table tbody tr[data-day]",
        """trs => trs.map(tr => ({
            day: tr.dataset.day,
            jobs: tr.cells[1].innerText,
            final: tr.cells[7].querySelector('.money').title,
        }))""",
    )
    next_month = add_months(last_month, 1)
    assert len(days) == (next_month - last_month).days
    assert all(day["day"].startswith(month) for day in days)
    day_jobs = sum(_count(day["jobs"]) for day in days)
    total_jobs = _count(_text(page, "#daily-total td:nth-of-type(1)"))
    month_jobs = _count(page.locator(f"#monthly-table tr[data-month='{month}'] td").first.inner_text())
    assert day_jobs == total_jobs == month_jobs > 0
    # Money: the day table's total is the month's figure; the days, each shown to 5 places, add
    # up to it within their rounding.
    month_cost = _five_places(
        page.locator(f"#monthly-table tr[data-month='{month}'] td .money").nth(1).get_attribute("title")
    )
    assert _five_places(page.locator("#daily-total td .money").nth(1).get_attribute("title")) == month_cost
    day_cost = sum(_five_places(day["final"]) for day in days)
    assert abs(day_cost - month_cost) <= Decimal("0.000005") * len(days)
    assert month_cost > 0
    page.locator("#daily").screenshot(path=str(artifacts_dir / "daily-desktop.png"))


def test_an_owner_invites_someone_who_accepts_then_changes_their_role_and_removes_them(
    live_server, chromium, owner, acme, artifacts_dir
):
    User.objects.create_user("nina", "nina@acme.test", "nina-pass-123")
    owner_context = chromium.new_context(viewport={"width": 1280, "height": 900})
    nina_context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = owner_context.new_page()
        log_in(page, live_server, username="olivia", password="owner-pass-123")
        page.goto(f"{live_server.url}/orgs/org_acme/team/")
        page.fill("#id_email", "nina@acme.test")
        page.select_option("#id_role", "member")
        with page.expect_navigation():
            page.click("form.create-key button[type=submit]")
        assert "Invitation sent to nina@acme.test" in page.content()
        assert page.locator("#invitations-table tr[data-invitation='nina@acme.test']").is_visible()
        assert mail.outbox[-1].to == ["nina@acme.test"]
        link = re.search(r"(http://\S+/invitations/\S+/)", mail.outbox[-1].body).group(1)
        page.screenshot(path=str(artifacts_dir / "team-invited.png"), full_page=True)

        nina = nina_context.new_page()
        log_in(nina, live_server, username="nina", password="nina-pass-123")
        nina.goto(link)
        assert "Acme" in nina.content()
        with nina.expect_navigation():
            nina.get_by_role("button", name="Join Acme").click()
        assert nina.url == f"{live_server.url}/orgs/org_acme/usage/"
        assert "Welcome to Acme" in nina.content()

        page.reload()
        row = page.locator("#team-table tr[data-member='nina']")
        assert "nina@acme.test" in row.inner_text()
        assert page.locator("#invitations-table").count() == 0
        row.locator("select[name=role]").select_option("owner")
        with page.expect_navigation():
            row.locator("button[type=submit]").click()
        assert "nina is now owner." in page.content()
        assert Membership.objects.get(user__username="nina", organisation=acme).role == "owner"

        with page.expect_navigation():
            page.locator("#team-table tr[data-member='nina'] a", has_text="Remove").click()
        assert "Remove nina from Acme?" in page.content()
        with page.expect_navigation():
            page.click("button.danger")
        assert "nina was removed from the organisation." in page.content()
        assert page.locator("#team-table tr[data-member='nina']").count() == 0
        assert nina.goto(f"{live_server.url}/orgs/org_acme/usage/").status == 404

        # A pending invitation, cancelled: its link then says so.
        page.fill("#id_email", "pat@acme.test")
        with page.expect_navigation():
            page.click("form.create-key button[type=submit]")
        pat_link = re.search(r"(http://\S+/invitations/\S+/)", mail.outbox[-1].body).group(1)
        pending = page.locator("#invitations-table tr[data-invitation='pat@acme.test']")
        with page.expect_navigation():
            pending.locator("button", has_text="Cancel").click()
        assert "The invitation of pat@acme.test was cancelled" in page.content()
        assert page.locator("#invitations-table").count() == 0
        assert not Invitation.objects.filter(email="pat@acme.test").exists()
        stranger = chromium.new_page()
        try:
            assert stranger.goto(pat_link).status == 410
            assert "cancelled by an owner" in stranger.locator("#refused-reason").inner_text()
        finally:
            stranger.close()
        page.screenshot(path=str(artifacts_dir / "team-desktop.png"), full_page=True)
    finally:
        owner_context.close()
        nina_context.close()


@pytest.fixture
def phone_390(chromium):
    context = chromium.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    yield context
    context.close()


_SCROLLERS = """() => [...document.querySelectorAll('body *')].filter(el => {
    const style = getComputedStyle(el);
    return ['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1;
}).map(el => ({id: el.querySelector('table')?.id || el.className, tabindex: el.getAttribute('tabindex')}))"""


def _inside_viewport(box: dict, width: int) -> bool:
    return box is not None and box["x"] >= -0.5 and box["x"] + box["width"] <= width + 0.5


def _reachable_beside_sticky_column(cell, sticky, width: int) -> bool:
    """Scroll ``cell``'s table from the start until the cell shows at the right edge: it must then
    be entirely on screen and not under the sticky first column ``sticky``."""
    cell.evaluate(
        """el => { el.closest('.table-wrap').scrollLeft = 0;
                   el.scrollIntoView({block: 'nearest', inline: 'end'}); }"""
    )
    box, first = cell.bounding_box(), sticky.bounding_box()
    return _inside_viewport(box, width) and box["x"] >= first["x"] + first["width"] - 0.5


def test_the_usage_and_jobs_pages_work_at_phone_width(
    live_server, phone_390, owner, acme, acme_months, artifacts_dir
):
    width = 390
    page = phone_390.new_page()
    log_in(page, live_server, username="olivia", password="owner-pass-123")
    assert page.url.endswith("/orgs/org_acme/usage/")
    page.screenshot(path=str(artifacts_dir / "usage-phone-390.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    # Every quick period is on screen, or its strip scrolls to it: none is cut off for good.
    presets = page.locator(".presets a")
    assert presets.count() >= 6
    for index in range(presets.count()):
        preset = presets.nth(index)
        preset.focus()
        assert _inside_viewport(preset.bounding_box(), width), preset.inner_text()

    # Tables wider than the screen scroll inside their card, from the keyboard too.
    scrollers = page.evaluate(_SCROLLERS)
    assert any(s["id"] == "monthly-table" for s in scrollers)
    assert all(s["tabindex"] == "0" for s in scrollers), scrollers
    wrap = page.locator("#monthly-table").locator("xpath=..")
    wrap.focus()
    assert page.evaluate("document.activeElement.querySelector('table')?.id") == "monthly-table"
    page.keyboard.press("End")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "el => el.scrollLeft > 0", arg=wrap.element_handle()
    )
    wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    # The month names (first column) stay in view as the table scrolls; the cost columns come in.
    first_cell = page.locator("#monthly-table tbody th[scope=row]").first
    assert _inside_viewport(first_cell.bounding_box(), width)
    final_header = page.locator("#monthly-table thead th", has_text="Final cost")
    assert _reachable_beside_sticky_column(final_header, first_cell, width)
    page.screenshot(path=str(artifacts_dir / "usage-phone-390-scrolled.png"))

    keys_wrap = page.locator("#keys-table").locator("xpath=..")
    keys_wrap.scroll_into_view_if_needed()
    keys_wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    key_name = page.locator("#keys-table tr[data-key='production'] th a")
    box = key_name.bounding_box()
    assert _inside_viewport(box, width)
    hit = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.closest('th')?.innerText",
        [box["x"] + 4, box["y"] + box["height"] / 2],
    )
    assert hit and "production" in hit, "the key name is covered by the scrolled cells"
    final_cost = page.locator("#keys-table tr[data-key='production'] td").last
    assert _reachable_beside_sticky_column(final_cost, key_name, width)

    # The jobs page: the job id stays, the money columns are reachable, the page never scrolls sideways.
    page.goto(f"{live_server.url}/orgs/org_acme/jobs/?month={format_month(add_months(current_month(), -1))}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert all(s["tabindex"] == "0" for s in page.evaluate(_SCROLLERS))
    jobs_wrap = page.locator("#jobs-table").locator("xpath=..")
    assert jobs_wrap.get_attribute("tabindex") == "0"
    page.screenshot(path=str(artifacts_dir / "jobs-phone-390.png"), full_page=True)
    jobs_wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    job_id = page.locator("#jobs-table tbody th[scope=row]").first
    assert _inside_viewport(job_id.bounding_box(), width)
    for money in ("Base cost", "Final cost", "Savings"):
        header = page.locator("#jobs-table thead th", has_text=money)
        assert _reachable_beside_sticky_column(header, job_id, width), money
    page.screenshot(path=str(artifacts_dir / "jobs-phone-390-scrolled.png"))
