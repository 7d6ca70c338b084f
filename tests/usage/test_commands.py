"""The operator commands, as scripts use them."""

import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ApiKey, Membership, Organisation
from accounts.services import api_key_create, api_key_verify
from tests.factories import run_manage
from usage import importing
from usage.models import Job, MonthlyUsage, StaleMonth
from usage.selectors import usage_report


def call(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def job_line(**overrides):
    values = {
        "org_id": "org_acme",
        "external_id": "j-1",
        "api_key": "some api key",
        "created_at": "2025-01-03T10:00:00Z",
        "language": "Hindi",
        "audio_duration_seconds": 312,
        "status": "completed",
        "has_transcript": True,
        "has_lrc": True,
        "transcription_tokens": 14,
        "note_tokens": 27,
    }
    values.update(overrides)
    return json.dumps(values)


def write_lines(tmp_path, lines, name="jobs.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_createorg_prints_the_id_and_honours_every_option(db):
    out, _ = call(
        "createorg", "Acme Audio", "--org-id", "org_abc123", "--plan", "standard", "--free-jobs", "25"
    )
    assert out.strip() == "org_abc123"
    organisation = Organisation.objects.get(org_id="org_abc123")
    assert (organisation.name, organisation.plan.name, organisation.free_job_allowance) == (
        "Acme Audio",
        "standard",
        25,
    )
    out, _ = call("createorg", "Random Id")
    assert Organisation.objects.filter(org_id=out.strip(), name="Random Id").exists()
    assert out.strip().startswith("org_")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Dup", "--org-id", "org_abc123"], "already exists"),
        (["Bad", "--org-id", "ABC"], "org_"),
        (["Bad", "--plan", "gold"], "unknown plan"),
        (["Bad", "--free-jobs", "-1"], "0 or more"),
    ],
)
def test_createorg_rejects_bad_input(db, args, message):
    call("createorg", "First", "--org-id", "org_abc123")
    with pytest.raises(CommandError, match=message):
        call("createorg", *args)


def test_createapikey_prints_the_secret_alone_on_the_last_line(acme):
    out, err = call("createapikey", "org_acme", "some api key")
    secret = out.strip().splitlines()[-1]
    assert out.strip() == secret
    assert api_key_verify(secret).name == "some api key"
    assert "shown only once" in err
    with pytest.raises(CommandError, match="already exists"):
        call("createapikey", "org_acme", "some api key")
    with pytest.raises(CommandError, match="unknown organisation"):
        call("createapikey", "org_nope", "x")


def test_import_jobs_upserts_and_refreshes_usage(acme, acme_key, tmp_path):
    path = write_lines(tmp_path, [job_line(), job_line(external_id="j-2", api_key=None, note_tokens=0)])
    out, _ = call("import_jobs", path)
    assert "2 created, 0 updated" in out
    assert Job.objects.get(external_id="j-2").source == "web"
    report = usage_report(organisation=acme, start_month=dt.date(2025, 1, 1), end_month=dt.date(2025, 1, 1))
    assert (report.totals.jobs, report.totals.note_tokens) == (2, 27)

    out, _ = call("import_jobs", path)
    assert "0 created, 2 updated" in out
    assert Job.objects.count() == 2

    changed = write_lines(tmp_path, [job_line(created_at="2025-02-03T10:00:00Z")], "changed.jsonl")
    call("import_jobs", changed)
    report = usage_report(organisation=acme, start_month=dt.date(2025, 1, 1), end_month=dt.date(2025, 2, 1))
    assert [month.jobs for month in report.months] == [1, 1]


@pytest.mark.parametrize("write_lines_per_batch", [1, 2, 20_000])
def test_a_job_repeated_in_a_file_takes_its_last_values_and_its_first_position(
    acme, acme_key, globex, tmp_path, monkeypatch, write_lines_per_batch
):
    """Same external id on several lines, in one write batch or across batches."""
    monkeypatch.setattr(importing, "WRITE_LINES", write_lines_per_batch)
    api_key_create(organisation=globex, name="some api key")
    moment = "2025-03-03T10:00:00Z"
    lines = [
        job_line(external_id="a", created_at=moment, note_tokens=1),
        job_line(external_id="b", created_at=moment, note_tokens=2),
        job_line(external_id="a", created_at=moment, note_tokens=3, org_id="org_globex"),
        job_line(external_id="a", created_at=moment, note_tokens=4),
        "",
        job_line(external_id="c", created_at=moment, note_tokens=5),
        job_line(external_id="a", created_at="2025-04-01T00:00:00Z", note_tokens=6),
    ]
    out, _ = call("import_jobs", write_lines(tmp_path, lines))
    assert "4 created" in out
    jobs = Job.objects.filter(organisation=acme).order_by("pk")
    assert [(job.external_id, job.note_tokens, job.month) for job in jobs] == [
        ("a", 6, dt.date(2025, 4, 1)),
        ("b", 2, dt.date(2025, 3, 1)),
        ("c", 5, dt.date(2025, 3, 1)),
    ]
    assert Job.objects.get(organisation=globex).note_tokens == 3
    report = usage_report(organisation=acme, start_month=dt.date(2025, 3, 1), end_month=dt.date(2025, 4, 1))
    assert [(month.jobs, month.note_tokens) for month in report.months] == [(2, 7), (1, 6)]


def test_reimporting_a_moved_job_empties_its_old_month(acme, acme_key, tmp_path):
    call("import_jobs", write_lines(tmp_path, [job_line(), job_line(external_id="j-2")]))
    moved = write_lines(tmp_path, [job_line(created_at="2024-12-31T23:59:59Z")], "moved.jsonl")
    out, _ = call("import_jobs", moved)
    assert "0 created, 1 updated" in out
    report = usage_report(organisation=acme, start_month=dt.date(2024, 12, 1), end_month=dt.date(2025, 1, 1))
    assert [month.jobs for month in report.months] == [1, 1]
    assert not StaleMonth.objects.exists()


def test_the_import_reports_progress_over_both_passes(acme, acme_key, tmp_path, monkeypatch):
    monkeypatch.setattr(importing, "WRITE_LINES", 3)
    lines = [job_line(external_id=f"j-{index}") for index in range(7)] + ["", job_line(status="nope")]
    steps = []
    report = importing.jobs_import_file(
        write_lines(tmp_path, lines), skip_invalid=True, progress=steps.append
    )
    assert (report.lines, report.created, report.invalid) == (8, 7, 1)
    assert sum(steps) == 2 * report.lines and all(step >= 0 for step in steps)
    # The staging table is gone, and a second import in the same connection works.
    report = importing.jobs_import_file(write_lines(tmp_path, lines[:2], "again.jsonl"))
    assert (report.created, report.updated) == (0, 2)


def test_every_bad_line_is_reported_with_its_number_and_nothing_is_imported(acme, acme_key, tmp_path):
    future = (timezone.now() + dt.timedelta(minutes=10)).isoformat()
    lines = [
        job_line(external_id="ok-1"),
        "{not json",
        job_line(external_id="b-3", org_id="org_nope"),
        job_line(external_id="b-4", api_key="no such key"),
        job_line(external_id="b-5", created_at=future),
        job_line(external_id="b-6", transcription_tokens=-1),
        job_line(external_id="b-7", status="done"),
        job_line(external_id="b-8", created_at="yesterday"),
        job_line(external_id="b-9", audio_duration_seconds="12"),
        "",
        job_line(external_id="ok-11"),
    ]
    path = write_lines(tmp_path, lines)
    with pytest.raises(CommandError, match="8 invalid line"):
        call("import_jobs", path)
    assert Job.objects.count() == 0

    out, err = call("import_jobs", path, "--skip-invalid")
    for number, reason in [
        (2, "not valid JSON"),
        (3, "unknown organisation 'org_nope'"),
        (4, "unknown API key name 'no such key'"),
        (5, "in the future"),
        (6, "'transcription_tokens' must not be negative"),
        (7, "unknown status 'done'"),
        (8, "ISO 8601"),
        (9, "'audio_duration_seconds' must be a whole number"),
    ]:
        assert f"line {number}: " in err and reason in err.split(f"line {number}: ")[1].splitlines()[0]
    assert "2 created" in out and "8 invalid line(s) skipped" in out
    assert set(Job.objects.values_list("external_id", flat=True)) == {"ok-1", "ok-11"}


def test_a_timestamp_within_five_minutes_ahead_is_accepted(acme, acme_key, tmp_path):
    soon = (timezone.now() + dt.timedelta(minutes=4)).isoformat()
    call("import_jobs", write_lines(tmp_path, [job_line(created_at=soon)]))
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # see tests/conftest.py
def test_import_jobs_exits_1_on_a_bad_file_and_is_quiet_when_piped(tmp_path):
    organisation = Organisation.objects.create(org_id="org_acme", name="Acme")
    api_key_create(organisation=organisation, name="some api key")
    bad = run_manage("import_jobs", write_lines(tmp_path, [job_line(), job_line(status="nope")]))
    assert bad.returncode == 1
    assert "line 2: unknown status 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr
    good = run_manage("import_jobs", write_lines(tmp_path, [job_line()], "good.jsonl"))
    assert good.returncode == 0, good.stderr
    assert "\r" not in good.stderr and "it/s" not in good.stderr  # no progress bar when piped
    missing = run_manage("import_jobs", str(tmp_path / "missing.jsonl"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_seed_demo_is_idempotent_and_says_how_to_log_in(db, settings):
    settings.DEBUG = True  # as under `make run`; the test runner turns DEBUG off
    out, _ = call("seed_demo")
    assert "demo-owner" in out and "demo-member" in out and "password" in out
    key = [line for line in out.splitlines() if line.startswith("Demo API key")][0].split(": ", 1)[1]
    assert api_key_verify(key).organisation.org_id == "org_demo"
    organisation = Organisation.objects.get(org_id="org_demo")
    assert Membership.objects.filter(organisation=organisation).count() == 2
    assert ApiKey.objects.filter(organisation=organisation).count() == 3
    before = sorted(Job.objects.values_list("external_id", "created_at", "tier", "is_free", "note_tokens"))
    aggregates = MonthlyUsage.objects.count()
    languages = set(Job.objects.values_list("language", flat=True))
    assert len(languages) >= 4
    assert Job.objects.filter(tier=2).exists()  # one month crosses into tier2
    assert Job.objects.dates("created_at", "month").count() >= 12

    out_again, _ = call("seed_demo")
    assert key in out_again
    assert (
        sorted(Job.objects.values_list("external_id", "created_at", "tier", "is_free", "note_tokens"))
        == before
    )
    assert MonthlyUsage.objects.count() == aggregates


def test_recompute_usage_command_scopes_and_reports(acme, acme_key, tmp_path):
    call("import_jobs", write_lines(tmp_path, [job_line(), job_line(external_id="j-2")]))
    MonthlyUsage.objects.all().delete()
    out, _ = call("recompute_usage", "--org", "org_acme", "--month", "2025-01")
    assert "1 organisation(s), 1 month(s)" in out and "1 aggregate row(s) corrected" in out
    out, _ = call("recompute_usage")
    assert "0 aggregate row(s) corrected" in out
    with pytest.raises(CommandError, match="unknown organisation"):
        call("recompute_usage", "--org", "org_nope")
    with pytest.raises(CommandError, match="--month"):
        call("recompute_usage", "--month", "2025-13")
