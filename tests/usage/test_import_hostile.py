"""Hostile job files: every bad line is reported with its number and a short reason, never a
traceback; the bounds of a job's counts hold in the validator and in the database; a failing
write says what it left behind; concurrent imports of the same jobs do not deadlock.

(Long because each hostile input of the hardening issue is its own regression test, in one place.)
"""

import concurrent.futures
import io
import json
import sys
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, IntegrityError, connection
from django.utils import timezone

from accounts.services import api_key_create, organisation_create
from tests.factories import at, make_job, run_manage
from usage import importing
from usage.engine.recompute import usage_recompute
from usage.models import MAX_AUDIO_DURATION_SECONDS, MAX_TOKENS, Job, MonthlyUsage, StaleMonth
from usage.services import jobs_upsert
from usage.validation import (
    DuplicateFields,
    FieldError,
    InvalidJSON,
    OrganisationDirectory,
    excerpt,
    json_loads,
    validate_job,
)

JOB = {
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


def line(**overrides) -> str:
    return json.dumps({**JOB, **overrides})


def raw(field: str, text: str) -> str:
    """A job line whose ``field`` is the JSON text ``text``, verbatim (last, so it stays intact)."""
    rest = {name: value for name, value in JOB.items() if name != field}
    return json.dumps(rest)[:-1] + f', "{field}": {text}}}'


STRINGS = ("external_id", "language", "org_id", "api_key")
MAX_AUDIO = "2,678,400 seconds (31 days)"
MAX_TOKEN_TEXT = "1,000,000,000"
DUPLICATED = '{"org_id": "org_acme", ' + line()[1:]

# (id, line, field, what its reason says); a field of None: the line as a whole.
CASES = [
    ("feb-29", line(created_at="2025-02-29T00:00:00Z"), "created_at", "must be an ISO 8601 date-time"),
    ("hour-24", line(created_at="2025-01-01T24:00:00Z"), "created_at", "must be an ISO 8601 date-time"),
    ("second-60", line(created_at="2025-01-01T00:00:60Z"), "created_at", "must be an ISO 8601 date-time"),
    *(
        (
            f"secret-as-key-name-{prefix}",
            line(api_key=f"{prefix}abcdefghijkl_{'S' * 43}"),
            "api_key",
            "'api_key' looks like a key itself: give the key's name, not its secret",
        )
        for prefix in ("upk_", "upsk_")
    ),
    *(
        (name, line(created_at=text), "created_at", "must be an ISO 8601 date-time")
        for name, text in (
            ("trailing-nul", "2025-01-03T10:00:00Z\x00"),
            ("trailing-newline", "2025-01-03T10:00:00Z\n"),
            ("fullwidth-digits", "２０２５-01-03T10:00:00Z"),
            ("arabic-indic-digits", "٢٠٢٥-٠١-٠٣T10:00:00Z"),
        )
    ),
    (
        "year-0-in-utc",
        line(created_at="0001-01-01T00:30:00+01:00"),
        "created_at",
        "'created_at' '0001-01-01T00:30:00+01:00' is before year 1 or after 9999 in UTC",
    ),
    (
        "year-10000-in-utc",
        line(created_at="9999-12-31T23:30:00-01:00"),
        "created_at",
        "'created_at' '9999-12-31T23:30:00-01:00' is before year 1 or after 9999 in UTC",
    ),
    (
        "audio-2^31",
        line(audio_duration_seconds=2**31),
        "audio_duration_seconds",
        f"'audio_duration_seconds' must be at most {MAX_AUDIO} (got 2147483648)",
    ),
    *(
        (
            f"{field}-{value}",
            line(**{field: value}),
            field,
            f"'{field}' must be at most {MAX_TOKEN_TEXT} (got {value})",
        )
        for field in ("transcription_tokens", "note_tokens")
        for value in (2**63, 9223372036854775807)
    ),
    *(
        (f"nul-in-{field}", line(**{field: "a\x00b"}), field, f"'{field}' must not contain a NUL character")
        for field in STRINGS
    ),
    *(
        (
            f"surrogate-in-{field}",
            line(**{field: "a\ud800"}),
            field,
            f"'{field}' must not contain a lone surrogate",
        )
        for field in STRINGS
    ),
    (
        "5000-digits",
        raw("note_tokens", "1" * 5000),
        None,
        "not valid JSON (an integer of more than 4,300 digits)",
    ),
    ("nested-100000", "[" * 100_000, None, "not valid JSON (nested too deeply)"),
    ("a-number", "42", None, "a job must be a JSON object, not 42"),
    ("an-array", '[{"org_id": "org_acme"}]', None, "a job must be a JSON object, not an array"),
    ("null", "null", None, "a job must be a JSON object, not null"),
    ("duplicate-key", DUPLICATED, "org_id", "duplicate field 'org_id'"),
    *(
        (
            f"float-{text}-{field}",
            raw(field, text),
            field,
            f"'{field}' must be a whole number (got {float(text)})",
        )
        for field in ("audio_duration_seconds", "transcription_tokens", "note_tokens")
        for text in ("12.0", "1e3")
    ),
    *(
        (
            f"boolean-{field}",
            line(**{field: True}),
            field,
            f"'{field}' must be a whole number (got true)",
        )
        for field in ("audio_duration_seconds", "transcription_tokens", "note_tokens")
    ),
    ("nan", raw("note_tokens", "NaN"), None, "not valid JSON (NaN is not a JSON number)"),
    (
        "status-an-array",
        line(status=["completed"]),
        "status",
        "'status' must be one of completed, failed, processing, queued (got an array)",
    ),
    (
        "4000-digits",
        raw("note_tokens", "9" * 4000),
        "note_tokens",
        f"'note_tokens' must be at most {MAX_TOKEN_TEXT} (got {'9' * 40}…)",
    ),
    (
        "long-org-id",
        line(org_id="org_" + "x" * 5000),
        "org_id",
        f"unknown organisation 'org_{'x' * 36}…'",
    ),
]
CASE_IDS = [case[0] for case in CASES]


def judge(text: str) -> list[FieldError]:
    """The validator's verdict on one line, as the import reaches it."""
    try:
        record = json_loads(text)
    except InvalidJSON as exc:
        return [FieldError(None, str(exc))]
    outcome = validate_job(record, directory=OrganisationDirectory(), now=timezone.now())
    assert isinstance(outcome, list), outcome
    return outcome


@pytest.mark.parametrize(("case", "text", "field", "reason"), CASES, ids=CASE_IDS)
def test_the_validator_rejects_each_hostile_value(acme, acme_key, case, text, field, reason):
    errors = judge(text)
    assert any(error.field == field and reason in error.message for error in errors), errors
    assert all(len(error.message) <= 160 for error in errors)


def call(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write(tmp_path, lines, name="jobs.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(b"".join(text.encode() + b"\n" if isinstance(text, str) else text for text in lines))
    return str(path)


def test_import_jobs_reports_each_hostile_line_by_number(acme, acme_key, tmp_path):
    lines = [line(external_id="ok-first"), *(text for _, text, _, _ in CASES), line(external_id="ok-last")]
    path = write(tmp_path, lines)
    with pytest.raises(CommandError, match=f"^{len(CASES)} invalid line\\(s\\) of {len(lines)}; nothing"):
        call("import_jobs", path)
    assert Job.objects.count() == 0

    out, err = call("import_jobs", path, "--skip-invalid")
    reported = dict(row.split(": ", 1) for row in err.splitlines())
    for number, (case, _, _, reason) in enumerate(CASES, start=2):
        assert reason in reported.pop(f"line {number}"), case
    assert not reported  # the valid lines, and only they, are not reported
    assert f"2 created, 0 updated, {len(CASES)} invalid line(s) skipped" in out
    assert set(Job.objects.values_list("external_id", flat=True)) == {"ok-first", "ok-last"}
    assert max(len(row) for row in err.splitlines()) <= 200  # short excerpts only
    assert "abcdefghijkl_S" not in err  # a key's secret given as its name is not echoed


def test_every_problem_of_a_job_is_listed_with_its_field(acme, acme_key):
    record = json_loads(
        '{"org_id": "org_acme", "org_id": "org_acme", "external_id": "", "api_key": "nope", '
        '"created_at": "2025-13-01T00:00:00Z", "language": 7, "status": "done", "has_lrc": "yes", '
        '"transcription_tokens": -1, "note_tokens": 1000000001}'
    )
    errors = validate_job(record, directory=OrganisationDirectory(), now=timezone.now())
    assert errors == [
        FieldError("org_id", "duplicate field 'org_id'"),
        FieldError("external_id", "'external_id' must be a non-empty string"),
        FieldError("api_key", "unknown API key name 'nope' for org_acme"),
        FieldError("created_at", "'created_at' must be an ISO 8601 date-time such as 2025-01-03T10:00:00Z"),
        FieldError("language", "'language' must be a non-empty string"),
        FieldError("audio_duration_seconds", "'audio_duration_seconds' must be a whole number (missing)"),
        FieldError("status", "unknown status 'done' (expected one of completed, failed, processing, queued)"),
        FieldError("has_lrc", "'has_lrc' must be true or false (got 'yes')"),
        FieldError("transcription_tokens", "'transcription_tokens' must not be negative (got -1)"),
        FieldError("note_tokens", f"'note_tokens' must be at most {MAX_TOKEN_TEXT} (got 1000000001)"),
    ]
    assert isinstance(record, DuplicateFields) and record.duplicates == ("org_id",)


def test_a_valid_job_becomes_a_job_input(acme, acme_key):
    job = validate_job(
        json_loads(line(api_key=None, created_at="2025-01-03T11:00:00+01:00", external_id=" j-1 ")),
        directory=OrganisationDirectory(),
        now=timezone.now(),
    )
    assert job == make_job(
        acme,
        external_id="j-1",
        created_at=at(2025, 1, 3, 10),
        audio_duration_seconds=312,
        transcription_tokens=14,
        note_tokens=27,
    )


def test_an_organisation_outside_the_directory_scope_is_reported_as_unknown(acme, acme_key, globex):
    scoped = OrganisationDirectory(scope=[globex.pk])
    now = timezone.now()
    outside = validate_job(json_loads(line()), directory=scoped, now=now)
    unknown = validate_job(json_loads(line(org_id="org_acme2")), directory=scoped, now=now)
    assert outside == [FieldError("org_id", "unknown organisation 'org_acme'")]
    assert unknown == [FieldError("org_id", "unknown organisation 'org_acme2'")]
    assert isinstance(validate_job(json_loads(line()), directory=OrganisationDirectory(), now=now), tuple)


def test_excerpts_are_short_and_printable():
    assert excerpt("a\x00b\ud800") == "'a\\x00b\\ud800'"
    assert excerpt("x" * 41) == "'" + "x" * 40 + "…'"
    assert excerpt(10**4000) == "1" + "0" * 39 + "…"
    assert excerpt(10**5000) == "an integer of 16,610 bits"  # beyond what str() converts
    assert (excerpt(None), excerpt(False), excerpt({}), excerpt(12.0)) == (
        "null",
        "false",
        "an object",
        "12.0",
    )


def test_the_largest_counts_are_accepted_and_summed(acme, acme_key, tmp_path):
    big = {
        "audio_duration_seconds": MAX_AUDIO_DURATION_SECONDS,
        "transcription_tokens": MAX_TOKENS,
        "note_tokens": MAX_TOKENS,
    }
    lines = [line(external_id=f"j-{index}", **big) for index in range(3)]
    out, _ = call("import_jobs", write(tmp_path, lines))
    assert "3 created" in out
    row = MonthlyUsage.objects.get()
    assert (row.jobs, row.audio_duration_seconds, row.transcription_tokens) == (
        3,
        3 * MAX_AUDIO_DURATION_SECONDS,
        3 * MAX_TOKENS,
    )


@pytest.mark.parametrize(
    "count",
    [
        {"audio_duration_seconds": MAX_AUDIO_DURATION_SECONDS + 1},
        {"transcription_tokens": MAX_TOKENS + 1},
        {"note_tokens": MAX_TOKENS + 1},
    ],
)
def test_the_database_refuses_counts_past_the_bounds(acme, count):
    with pytest.raises(IntegrityError):
        jobs_upsert(jobs=[make_job(acme, created_at=at(2025, 1, 3), **count)])


def test_a_file_that_is_not_utf8_is_never_imported(acme, acme_key, tmp_path):
    first, second = line(external_id="ok-1").encode() + b"\n", b"{not json\n"
    bad = line(external_id="j-X").encode().replace(b"j-X", b"j-\xff")
    path = write(tmp_path, [first, second, b"\n", bad + b"\n", line(external_id="ok-5")])
    for flags in ([], ["--skip-invalid"]):
        with pytest.raises(CommandError) as raised:
            call("import_jobs", path, *flags)
        column = bad.index(b"\xff")
        assert str(raised.value) == (
            f"line 4: not UTF-8 text: byte 0xff at byte offset {len(first) + len(second) + 1 + column} "
            f"of the file (byte {column + 1} of the line); nothing was imported"
        )
        assert Job.objects.count() == 0


def test_standard_input_is_read_for_a_dash(acme, acme_key, monkeypatch):
    data = (line(external_id="a") + "\n" + line(external_id="b") + "\n").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    out, _ = call("import_jobs", "-")
    assert "Imported 2 job(s) from 2 line(s): 2 created, 0 updated." in out
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"org_id": "\xc3"}\n')))
    with pytest.raises(CommandError, match="^line 1: not UTF-8 text: byte 0xc3 at byte offset 12 "):
        call("import_jobs", "-")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # see tests/conftest.py
def test_the_command_exits_1_without_a_traceback(tmp_path):
    organisation = organisation_create(name="Acme", org_id="org_acme")
    api_key_create(organisation=organisation, name="some api key")
    path = write(tmp_path, [line(), b'{"org_id": "\xff"}\n', line(transcription_tokens=2**63)])
    aborted = run_manage("import_jobs", path, "--skip-invalid")
    assert aborted.returncode == 1
    assert "line 2: not UTF-8 text" in aborted.stderr and "Traceback" not in aborted.stderr
    piped = run_manage("import_jobs", "-", input_text=line() + "\n")
    assert piped.returncode == 0 and "1 created" in piped.stdout, piped.stderr
    assert Job.objects.count() == 1


def test_a_failed_write_reports_the_lines_it_had_written(acme, acme_key, tmp_path, monkeypatch):
    monkeypatch.setattr(importing, "WRITE_LINES", 2)
    upsert = importing.jobs_upsert_staged
    calls = []

    def second_batch_fails(**kwargs):
        calls.append(kwargs["lines"])
        if len(calls) == 2:
            raise DatabaseError("the disk is full\nCONTEXT: a second line")
        return upsert(**kwargs)

    monkeypatch.setattr(importing, "jobs_upsert_staged", second_batch_fails)
    lines = [line(external_id=f"j-{index}") for index in range(5)]
    with pytest.raises(CommandError) as raised:
        call("import_jobs", write(tmp_path, lines))
    assert str(raised.value) == (
        "writing the jobs of lines 3-4 failed: DatabaseError: the disk is full; "
        "the jobs of lines 1-2 were imported (2 created, 0 updated), none after"
    )
    assert sorted(Job.objects.values_list("external_id", flat=True)) == ["j-0", "j-1"]


def test_a_failed_refresh_says_every_job_was_imported(acme, acme_key, tmp_path, monkeypatch):
    def failing_refresh(**kwargs):
        raise OverflowError("integer out of range")

    monkeypatch.setattr(importing, "usage_refresh_organisations", failing_refresh)
    with pytest.raises(CommandError) as raised:
        call("import_jobs", write(tmp_path, [line(), "", line(external_id="j-2")]))
    assert str(raised.value) == (
        "refreshing usage failed: OverflowError: integer out of range; every job was imported "
        "(2 created, 0 updated); the next read of their usage refreshes it"
    )
    assert Job.objects.count() == 2 and StaleMonth.objects.exists()


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row-level deadlocks are PostgreSQL's; SQLite has one writer at a time",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # see tests/conftest.py
def test_two_imports_of_the_same_jobs_in_opposite_orders_both_finish(tmp_path):
    """Both imports start writing at the same moment; without the per-organisation lock, each
    holds rows the other needs and PostgreSQL kills one of them (DeadlockDetected)."""
    organisation = organisation_create(name="Acme", org_id="org_acme")
    api_key_create(organisation=organisation, name="some api key")
    count = 4_000
    lines = [
        line(
            external_id=f"j-{index}",
            created_at=f"2025-01-03T10:{index // 100:02d}:{index % 60:02d}Z",
            note_tokens=index,
        )
        for index in range(count)
    ]
    paths = [write(tmp_path, lines, "forward.jsonl"), write(tmp_path, lines[::-1], "backward.jsonl")]
    start_writing = threading.Barrier(2)

    def run(path: str) -> importing.ImportReport:
        read = 0

        def progress(lines_advanced: int) -> None:
            nonlocal read
            before, read = read, read + lines_advanced
            if before < count <= read:  # the reading pass is over: write together
                start_writing.wait(timeout=60)

        try:
            return importing.jobs_import_file(path, progress=progress)
        finally:
            connection.close()  # this thread's own connection

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(run, paths))

    assert sorted((report.created, report.updated) for report in reports) == [(0, count), (count, 0)]
    assert Job.objects.count() == count
    assert sorted(Job.objects.values_list("note_tokens", flat=True)) == list(range(count))
    row_sums = [(row.jobs, row.note_tokens) for row in MonthlyUsage.objects.all()]
    assert [sum(column) for column in zip(*row_sums, strict=True)] == [count, sum(range(count))]
    assert not StaleMonth.objects.exists()
    result = usage_recompute()
    assert (result.rows_corrected, result.jobs_retiered, result.free_flags_fixed) == (0, 0, 0)
