"""The ``usage-portal`` command line."""

import io
import json
from decimal import Decimal

import httpx
import pytest

from fakes import MONTHLY_TEXT, json_response
from usage_portal_client import cli


def run(client, *argv):
    out = io.StringIO()
    status = cli.run(cli.build_parser().parse_args(list(argv)), client, out)
    return status, out.getvalue()


def test_usage_prints_a_monthly_table(client, portal):
    portal.answer(json_response(200, MONTHLY_TEXT))

    status, out = run(client, "usage", "--start-month", "2025-01", "--end-month", "2025-02")

    assert status == 0
    assert dict(portal.requests[0].url.params) == {"start_month": "2025-01", "end_month": "2025-02"}
    assert out == (
        "Usage 2025-01 to 2025-02\n"
        "\n"
        "Month    Jobs  Transcription  Notes  Base cost  Final cost  Savings  Tier disc.  Jobs by tier\n"
        "-------  ----  -------------  -----  ---------  ----------  -------  ----------  ------------\n"
        "2025-01   108          1,672  2,905    0.07482     0.07482  0.00000       0.00%  tier1 108\n"
        "2025-02     0              0      0    0.00000     0.00000  0.00000       0.00%  -\n"
        "-------  ----  -------------  -----  ---------  ----------  -------  ----------  ------------\n"
        "Total     108          1,672  2,905    0.07482     0.07482  0.00000\n"
        "\n"
        "Effective discount 0.00%    Free jobs left 0\n"
        "\n"
        "API key          Jobs  Transcription  Notes  Base cost  Final cost  Savings\n"
        "---------------  ----  -------------  -----  ---------  ----------  -------\n"
        "some api key      107          1,520  2,715    0.06950     0.06950  0.00000\n"
        "another api key     1            152    190    0.00532     0.00532  0.00000\n"
    )


def test_usage_json_prints_the_portal_body_with_exact_digits(client, portal):
    portal.answer(json_response(200, MONTHLY_TEXT))

    status, out = run(client, "usage", "--json")

    assert status == 0
    assert portal.requests[0].url.query == b""
    assert json.loads(out, parse_float=Decimal) == json.loads(MONTHLY_TEXT, parse_float=Decimal)
    assert '"base_cost": 0.07482' in out
    assert '"savings": 0.00000' in out


def test_a_period_without_key_jobs_says_so(client, portal):
    body = json.loads(MONTHLY_TEXT)
    body["api_keys"] = {}
    portal.answer(json_response(200, json.dumps(body)))

    _, out = run(client, "usage", "--end-month", "2025-01")

    assert out.endswith("\nNo API key has jobs in this period.\n")


def test_main_reads_the_key_from_the_environment_and_reports_errors(monkeypatch, capsys):
    monkeypatch.setenv("USAGE_PORTAL_API_KEY", "upk_x")

    def refuse(request):
        return json_response(401, {"detail": "Invalid API key."})

    real_client = httpx.Client
    monkeypatch.setattr(
        httpx, "Client", lambda **options: real_client(transport=httpx.MockTransport(refuse), **options)
    )

    status = cli.main(["--base-url", "http://portal.test", "usage"])

    assert status == 1
    assert capsys.readouterr().err == "usage-portal: error: 401 Unauthorized: Invalid API key.\n"


def test_main_without_a_key_exits_1_naming_the_variable(capsys):
    assert cli.main(["usage"]) == 1
    assert "USAGE_PORTAL_API_KEY" in capsys.readouterr().err


def test_a_wrong_command_line_exits_2(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["usage", "--month", "2025-01"])

    assert caught.value.code == 2
