"""The jobs page ``/orgs/<org_id>/jobs/`` and its streamed CSV ``/orgs/<org_id>/jobs.csv``."""

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext

from accounts.services import api_key_create
from tests.factories import at
from usage.selectors import usage_report

PAGE = "/orgs/org_acme/jobs/"
CSV = "/orgs/org_acme/jobs.csv"
MARCH = dt.date(2025, 3, 1)


@pytest.fixture(autouse=True)
def _clock(march_2025):
    """The current month is 2025-03."""


@pytest.fixture
def acme_jobs(acme, job, add_jobs):
    """Five March jobs of Acme (two with a key whose name looks like a formula), one web job in
    February, and a March job of Globex that must never show."""
    key = api_key_create(organisation=acme, name="=cmd|' /C calc'!A0").api_key
    add_jobs(
        [
            job(acme, created_at=at(2025, 2, 10), external_id="feb-web"),
            *(
                job(
                    acme,
                    created_at=at(2025, 3, 1 + index),
                    api_key=key if index < 2 else None,
                    external_id=f"+mar-{index}" if index == 0 else f"mar-{index}",
                    transcription_tokens=123 + index,
                    note_tokens=45 * index,
                    language="@Tamil" if index == 4 else "Hindi",
                )
                for index in range(5)
            ),
        ]
    )
    return key


@pytest.fixture
def globex_job(globex, job, add_jobs):
    add_jobs([job(globex, created_at=at(2025, 3, 2), external_id="globex-secret")])


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-job="([^"]+)"', page)


def test_a_member_sees_the_month_in_rank_order(as_member, acme_jobs, globex_job):
    response = as_member.get(PAGE, {"month": "2025-03"})
    assert response.status_code == 200
    page = response.content.decode()
    assert _rows(page) == ["+mar-0", "mar-1", "mar-2", "mar-3", "mar-4"]
    assert "globex-secret" not in page


def test_the_owner_sees_it_too(client, owner, acme_jobs):
    client.force_login(owner)
    assert _rows(client.get(PAGE).content.decode()) == ["+mar-0", "mar-1", "mar-2", "mar-3", "mar-4"]


@pytest.mark.parametrize("path", [PAGE, CSV])
def test_an_outsider_gets_404(client, outsider, acme_jobs, path):
    client.force_login(outsider)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("path", [PAGE, CSV])
def test_anonymous_is_sent_to_log_in(client, acme_jobs, path):
    response = client.get(path)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_money_is_shown_to_5_places_with_the_exact_figure_on_hover(as_member, acme, acme_jobs):
    page = as_member.get(PAGE, {"month": "2025-03", "api_key": ""}).content.decode()
    # mar-2: base = 125 x 0.01 / 1000 + 90 x 0.02 / 1000 = 0.00305 exactly
    row = page[page.index('data-job="mar-2"') :]
    row = row[: row.index("</tr>")]
    assert re.search(r'title="0\.003050*">0\.00305<', row)


def test_filters_and_keyset_pages(as_member, acme_jobs):
    first = as_member.get(PAGE, {"month": "2025-03", "limit": "2"}).content.decode()
    assert _rows(first) == ["+mar-0", "mar-1"]
    assert 'id="first-page"' not in first
    seen = _rows(first)
    page = first
    while 'id="next-page"' in page:
        href = re.search(r'id="next-page" href="([^"]+)"', page).group(1).replace("&amp;", "&")
        assert "offset" not in href and "cursor=" in href
        page = as_member.get(PAGE + href).content.decode()
        assert 'id="first-page"' in page
        seen += _rows(page)
    assert seen == ["+mar-0", "mar-1", "mar-2", "mar-3", "mar-4"]

    web = as_member.get(PAGE, {"month": "2025-03", "api_key": ""}).content.decode()
    assert _rows(web) == ["mar-2", "mar-3", "mar-4"]
    form_any = {"month": "2025-03", "api_key": "*", "status": "", "language": ""}
    everything = as_member.get(PAGE, form_any).content.decode()
    assert len(_rows(everything)) == 5
    tamil = as_member.get(PAGE, {"month": "2025-03", "language": "@Tamil"}).content.decode()
    assert _rows(tamil) == ["mar-4"]
    february = as_member.get(PAGE, {"month": "2025-02"}).content.decode()
    assert _rows(february) == ["feb-web"]


@pytest.mark.parametrize(
    ("params", "name"),
    [({"month": "2025-04"}, "month"), ({"status": "lost"}, "status"), ({"cursor": "x"}, "cursor")],
)
def test_a_bad_parameter_is_a_400_saying_which(as_member, acme_jobs, params, name):
    response = as_member.get(PAGE, params)
    assert response.status_code == 400
    assert f"<li>{name}: " in response.content.decode()
    assert as_member.get(CSV, params).status_code == 400


def test_the_query_count_does_not_grow_with_jobs(as_member, acme, acme_jobs, job, add_jobs):
    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert as_member.get(PAGE, {"month": "2025-03"}).status_code == 200
        return len(captured)

    before = count()
    add_jobs(job(acme, created_at=at(2025, 3, 20) + dt.timedelta(seconds=index)) for index in range(150))
    assert count() == before


def _csv(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def test_the_csv_streams_every_job_with_exact_money(as_member, acme, acme_jobs, globex_job):
    response = as_member.get(CSV, {"month": "2025-03"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="org_acme-jobs-2025-03.csv"' in response["Content-Disposition"]
    header, *rows = _csv(response)
    assert header[:3] == ["external_id", "created_at", "api_key"]
    assert header[-3:] == ["base_cost", "final_cost", "savings"]
    assert [row[0] for row in rows] == ["'+mar-0", "mar-1", "mar-2", "mar-3", "mar-4"]
    report = usage_report(organisation=acme, start_month=MARCH, end_month=MARCH)
    assert sum(Decimal(row[header.index("final_cost")]) for row in rows) == report.months[0].final_cost
    assert sum(Decimal(row[header.index("base_cost")]) for row in rows) == report.months[0].base_cost


def test_csv_cells_cannot_run_as_formulas(as_member, acme_jobs):
    header, *rows = _csv(as_member.get(CSV, {"month": "2025-03"}))
    keys = {row[header.index("api_key")] for row in rows}
    assert keys == {"'=cmd|' /C calc'!A0", ""}
    assert rows[-1][header.index("language")] == "'@Tamil"
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell


def test_the_csv_reads_by_keyset_chunks(as_member, acme, acme_jobs, job, add_jobs, monkeypatch):
    from usage import job_selectors

    monkeypatch.setattr(job_selectors, "STREAM_CHUNK", 2)
    monkeypatch.setattr(job_selectors.job_stream, "__kwdefaults__", {"chunk_size": 2})
    header, *rows = _csv(as_member.get(CSV, {"month": "2025-03"}))
    assert [row[0] for row in rows] == ["'+mar-0", "mar-1", "mar-2", "mar-3", "mar-4"]


def test_the_usage_page_links_to_the_jobs(as_member, acme_jobs):
    page = as_member.get("/orgs/org_acme/usage/", {"start": "2025-02", "end": "2025-03"}).content.decode()
    assert 'href="/orgs/org_acme/jobs/?month=2025-03"' in page
    assert 'href="/orgs/org_acme/jobs/?month=2025-02"' in page
    assert 'href="/orgs/org_acme/jobs/?month=2025-03&amp;api_key="' in page
    assert "/orgs/org_acme/jobs/?month=2025-03&amp;api_key=%3Dcmd%7C" in page
