"""The customer portal in a real headless Chromium: log in, read usage, export, manage keys.

Data is written through the services before the browser opens; the live server shares the
test database (``live_server`` makes these tests transactional).
"""

import csv
import io
import re

import pytest

from accounts.models import ApiKey
from tests.portal_data import build_usage_history
from usage.months import add_months, current_month, format_month
from usage.selectors import usage_report
from usage.services import organisation_free_allowance_set

# serialized_rollback: the live server needs real commits, and the flush after each test would
# otherwise also drop the rows the data migrations made (the standard pricing plan).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

KEY_RE = re.compile(r"^upk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$")


def log_in(page, live_server, *, username: str, password: str) -> None:
    """Log in through the real form and wait for the page it lands on."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("form button[type=submit]")


@pytest.fixture
def acme_history(acme):
    """A year of growing usage on three keys and the web, reaching tier2 in the current month."""
    organisation_free_allowance_set(organisation=acme, allowance=500)
    return build_usage_history(
        organisation=acme,
        key_names=["production", "staging", "mobile-app"],
        last_month=current_month(),
        months=12,
        jobs_per_key_month=40,
        growth=30,
        web_jobs_per_month=30,
        calls_per_job=3,
    )


def _text(page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def test_owner_reads_usage_changes_range_and_downloads_csv(
    live_server, desktop, owner, acme_history, artifacts_dir
):
    this_month = current_month()
    full = usage_report(
        organisation=acme_history.organisation, start_month=add_months(this_month, -11), end_month=this_month
    )
    page = desktop.new_page()
    log_in(page, live_server, username="olivia", password="owner-pass-123")

    assert page.url == f"{live_server.url}/orgs/org_acme/usage/"
    assert _text(page, "#total-jobs") == f"{full.totals.jobs:,}"
    chart = page.locator("#jobs-chart svg.chart-wide")
    assert chart.is_visible()
    assert page.get_by_role("img", name="Jobs per month").is_visible()
    assert page.get_by_role("img", name="Cost per month").is_visible()
    assert "busiest month" in chart.locator("desc").text_content()
    assert chart.locator("rect.bar-jobs").count() == 12
    assert page.locator("#cost-chart svg.chart-wide").is_visible()
    assert not page.locator("#jobs-chart svg.chart-narrow").is_visible()
    assert "tier2" in _text(page, "#tier-status")
    page.screenshot(path=str(artifacts_dir / "usage-desktop.png"), full_page=True)

    page.click(".presets >> text=3 months")
    page.wait_for_url(re.compile(r"start=\d{4}-\d{2}&end=\d{4}-\d{2}"))
    three = usage_report(
        organisation=acme_history.organisation, start_month=add_months(this_month, -2), end_month=this_month
    )
    assert _text(page, "#total-jobs") == f"{three.totals.jobs:,}"
    assert page.locator("#jobs-chart svg.chart-wide rect.bar-jobs").count() == 3

    first = format_month(add_months(this_month, -5))
    page.fill("#id_start", first)
    page.fill("#id_end", format_month(add_months(this_month, -1)))
    with page.expect_navigation():
        page.click(".range-form button[type=submit]")
    assert f"start={first}" in page.url
    assert page.locator("#monthly-table tbody tr").count() == 5

    with page.expect_download() as download_info:
        page.click("#csv-download")
    download = download_info.value
    expected_name = f"org_acme-usage-{first}-{format_month(add_months(this_month, -1))}.csv"
    assert download.suggested_filename == expected_name
    with open(download.path(), encoding="utf-8-sig") as exported:  # the CSV starts with a BOM
        rows = list(csv.DictReader(io.StringIO(exported.read())))
    month_rows = [row for row in rows if row["record"] == "month"]
    assert [row["month_start"] for row in month_rows] == [
        format_month(add_months(this_month, offset)) for offset in range(-5, 0)
    ]
    assert sum(int(row["jobs"]) for row in month_rows) == int(_text(page, "#total-jobs").replace(",", ""))

    # A hand-edited, shared URL with a bad month gets a friendly form error, not a crash.
    response = page.goto(f"{live_server.url}/orgs/org_acme/usage/?start=2020-13&end={first}")
    assert response.status == 400
    assert "Enter a month as YYYY-MM" in _text(page, "#range-errors")


def test_owner_creates_a_key_sees_it_once_and_revokes_it(live_server, desktop, owner, acme):
    desktop.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = desktop.new_page()
    log_in(page, live_server, username="olivia", password="owner-pass-123")
    page.click("nav.tabs >> text=API keys")
    page.wait_for_url(f"{live_server.url}/orgs/org_acme/keys/")

    page.fill("#id_name", "ci-pipeline")
    with page.expect_navigation():
        page.click("form.create-key button[type=submit]")
    assert page.url == f"{live_server.url}/orgs/org_acme/keys/", "the secret must never be in a URL"
    secret = page.input_value("#new-key-secret")
    assert KEY_RE.match(secret)
    created = ApiKey.objects.get(organisation=acme, name="ci-pipeline")
    assert secret.startswith(created.prefix + "_")
    page.click("#copy-key")
    page.wait_for_function("document.getElementById('copy-key').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # The secret came in the POST's own answer: opening the page again never shows it.
    page.goto(f"{live_server.url}/orgs/org_acme/keys/")
    assert page.locator("#new-key-secret").count() == 0
    assert secret not in page.content()
    row = page.locator("tr[data-key-name='ci-pipeline']")
    assert "Active" in row.inner_text()

    with page.expect_navigation():
        row.locator("text=Revoke").click()
    assert "Revoke “ci-pipeline”?" in page.content()
    with page.expect_navigation():
        page.click("button.danger")
    assert page.url == f"{live_server.url}/orgs/org_acme/keys/"
    assert "Revoked" in page.locator("tr[data-key-name='ci-pipeline']").inner_text()
    created.refresh_from_db()
    assert created.is_revoked


def test_usage_page_fits_a_phone(live_server, phone, owner, acme_history, artifacts_dir):
    page = phone.new_page()
    log_in(page, live_server, username="olivia", password="owner-pass-123")
    assert page.url.endswith("/orgs/org_acme/usage/")
    assert page.locator("#jobs-chart svg.chart-narrow").is_visible()
    assert not page.locator("#jobs-chart svg.chart-wide").is_visible()
    page.screenshot(path=str(artifacts_dir / "usage-phone.png"), full_page=True)
    page.screenshot(path=str(artifacts_dir / "usage-phone-top.png"))
    # Wide tables scroll inside their cards; the page itself never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
