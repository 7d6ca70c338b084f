"""Real clients against a live server, written as the contract documents' examples are.

Each client runs in its own process with the key in ``LYRCS_API_KEY``; only the base URL differs
from the documents.
"""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from accounts.services import api_key_create, organisation_create
from usage.months import current_month, format_month

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def customer(job, add_jobs):
    """org_abc123 this month: 4 API jobs (5,400 s of audio, 3 complete), 1 web job; base 0.02 each.

    API jobs cost 1,000 x 0.01/1K + 500 x 0.02/1K = 0.02; the web job has no tokens.
    """
    organisation = organisation_create(name="Lyrcs customer", org_id="org_abc123")
    key = api_key_create(organisation=organisation, name="some api key")
    month = current_month()
    start = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
    add_jobs(
        [
            *(
                job(
                    organisation,
                    api_key=key.api_key,
                    created_at=start + dt.timedelta(seconds=index),
                    audio_duration_seconds=seconds,
                    has_lrc=index != 3,
                    transcription_tokens=1000,
                    note_tokens=500,
                    language=language,
                )
                for index, (seconds, language) in enumerate(
                    [(1800, "Hindi"), (1800, "Hindi"), (1200, "Tamil"), (600, "Telugu")]
                )
            ),
            job(
                organisation,
                created_at=start + dt.timedelta(seconds=9),
                transcription_tokens=0,
                note_tokens=0,
            ),
        ]
    )
    return key


def run(command: list[str], key: str, *, cwd=None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "LYRCS_API_KEY": key}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def this_month() -> str:
    return format_month(current_month())


# Python requests ------------------------------------------------------------------------------


def test_python_requests_all_time(live_server, customer, tmp_path):
    script = tmp_path / "all_time.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import os, requests

            r = requests.get(
                "{live_server.url}/api/v1/usage",
                headers={{"Authorization": f"Bearer {{os.environ['LYRCS_API_KEY']}}"}},
            )
            usage = r.json()

            hours = usage["total_duration_seconds"] / 3600
            print(f"Processed {{hours:.1f}} hours of audio")
            """
        )
    )

    result = run([sys.executable, str(script)], customer.plaintext)

    assert result.stdout == "Processed 1.5 hours of audio\n"


def test_python_requests_monthly(live_server, customer, tmp_path):
    script = tmp_path / "monthly.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import os, requests

            r = requests.get(
                "{live_server.url}/usage",
                params={{"start_month": "{this_month()}", "end_month": "{this_month()}"}},
                headers={{"Authorization": f"Bearer {{os.environ['LYRCS_API_KEY']}}"}},
            )
            usage = r.json()

            totals = usage["totals"]
            key = usage["api_keys"]["some api key"]
            print(f"{{totals['jobs']}} jobs, final cost {{totals['final_cost']:.5f}}, "
                  f"{{key['jobs']}} via 'some api key'")
            """
        )
    )

    result = run([sys.executable, str(script)], customer.plaintext)

    assert result.stdout == "5 jobs, final cost 0.08000, 4 via 'some api key'\n"


# Node.js fetch --------------------------------------------------------------------------------


@pytest.fixture
def node():
    executable = shutil.which("node")
    if executable is None:
        pytest.skip("node is not installed")
    return executable


def test_node_fetch_all_time(live_server, customer, tmp_path, node):
    script = tmp_path / "all_time.mjs"
    script.write_text(
        textwrap.dedent(
            f"""\
            const res = await fetch("{live_server.url}/api/v1/usage", {{
              headers: {{ Authorization: `Bearer ${{process.env.LYRCS_API_KEY}}` }},
            }});
            const usage = await res.json();

            const hours = (usage.total_duration_seconds / 3600).toFixed(1);
            console.log(`Processed ${{hours}} hours of audio`);
            console.log(`Success rate: ${{((usage.completed_jobs / usage.total_jobs) * 100).toFixed(1)}}%`);
            """
        )
    )

    result = run([node, str(script)], customer.plaintext)

    assert result.stdout == "Processed 1.5 hours of audio\nSuccess rate: 75.0%\n"


def test_node_fetch_monthly(live_server, customer, tmp_path, node):
    script = tmp_path / "monthly.mjs"
    script.write_text(
        textwrap.dedent(
            f"""\
            const res = await fetch("{live_server.url}/usage?start_month={this_month()}", {{
              headers: {{ Authorization: `Bearer ${{process.env.LYRCS_API_KEY}}` }},
            }});
            const usage = await res.json();

            const month = usage.monthly_breakdown[0];
            const cost = month.final_cost.toFixed(5);
            console.log(`${{month.month}}: ${{month.jobs}} jobs, final cost ${{cost}}`);
            """
        )
    )

    result = run([node, str(script)], customer.plaintext)

    assert result.stdout == f"{this_month()}: 5 jobs, final cost 0.08000\n"


# curl -----------------------------------------------------------------------------------------


@pytest.fixture
def curl():
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")


def test_curl_all_time(live_server, customer, curl):
    command = f'curl {live_server.url}/api/v1/usage -H "Authorization: Bearer $LYRCS_API_KEY"'

    result = run(["bash", "-c", command], customer.plaintext)

    body = json.loads(result.stdout)
    assert body == {
        "org_id": "org_abc123",
        "period": "all_time",
        "total_jobs": 4,
        "completed_jobs": 3,
        "total_duration_seconds": 5400,
        "jobs_by_language": {"Hindi": 2, "Tamil": 1, "Telugu": 1},
        "api_calls": 1,
    }
    print(f"Processed {body['total_duration_seconds'] / 3600:.1f} hours of audio")


def test_curl_monthly(live_server, customer, curl):
    month = this_month()
    command = (
        f'curl "{live_server.url}/usage?start_month={month}&end_month={month}" '
        '-H "Authorization: Bearer $LYRCS_API_KEY"'
    )

    result = run(["bash", "-c", command], customer.plaintext)

    body = json.loads(result.stdout)
    assert body["period"] == {"start_month": month, "end_month": month}
    assert body["totals"]["jobs"] == 5
    assert body["totals"]["final_cost"] == 0.08
    assert list(body["api_keys"]) == ["some api key"]
    assert '"final_cost":0.08000' in result.stdout


def test_curl_without_a_key_gets_401_with_the_bearer_challenge(live_server, customer, curl):
    result = run(["curl", "-s", "-i", f"{live_server.url}/api/v1/usage"], customer.plaintext)

    head, _, body = result.stdout.partition("\n\n")  # text mode turned CRLF into LF
    assert head.startswith("HTTP/1.1 401")
    assert "WWW-Authenticate: Bearer" in head
    assert "Cache-Control: no-store" in head
    assert json.loads(body) == {"detail": "Authentication credentials were not provided."}
