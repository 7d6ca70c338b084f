"""The production guard and the deployment checklist, run as a real process would."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "False",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "ALLOWED_HOSTS": "portal.example.com",
    "SECURE_SSL_REDIRECT": "True",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "True",
    "SECURE_HSTS_PRELOAD": "True",
    "SESSION_COOKIE_SECURE": "True",
    "CSRF_COOKIE_SECURE": "True",
}


def manage(*args, **env):
    environment = {key: value for key, value in os.environ.items() if key not in PRODUCTION}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_debug_off_refuses_to_start_without_a_real_secret_key():
    for secret in ("", "too-short", "x" * 49):
        result = manage("check", DEBUG="False", SECRET_KEY=secret)
        assert result.returncode != 0
        assert "set SECRET_KEY to a random value of at least 50 characters" in result.stderr


def test_production_settings_pass_the_deployment_checklist():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_off_without_https_variables_still_starts_for_plain_http():
    result = manage("check", DEBUG="False", SECRET_KEY=PRODUCTION["SECRET_KEY"])
    assert result.returncode == 0, result.stderr


def test_a_bad_crontab_is_refused_with_a_clear_message():
    result = manage("check", USAGE_RECOMPUTE_CRON="0 2 * *")
    assert result.returncode != 0 and "USAGE_RECOMPUTE_CRON must have 5 fields" in result.stderr


def test_the_beat_schedule_follows_the_variable():
    code = (
        "from django.conf import settings; s = settings.CELERY_BEAT_SCHEDULE['nightly-usage-recompute']; "
        "print(s['task'], s['schedule']._orig_minute, s['schedule']._orig_hour)"
    )
    result = manage("shell", "--no-imports", "-c", code, USAGE_RECOMPUTE_CRON="15 3 * * *")
    assert result.stdout.split() == ["usage.tasks.recompute_usage", "15", "3"], result.stderr


def test_a_redis_broker_hands_an_unacknowledged_task_out_again_after_30_minutes():
    code = (
        "from django.conf import settings; "
        "print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'])"
    )
    result = manage("shell", "--no-imports", "-c", code, CELERY_BROKER_URL="redis://127.0.0.1:6379/9")
    assert result.stdout.split() == ["1800"], result.stderr
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        code,
        CELERY_BROKER_URL="redis://127.0.0.1:6379/9",
        CELERY_VISIBILITY_TIMEOUT="600",
    )
    assert result.stdout.split() == ["600"], result.stderr
