import datetime as dt
import random

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts import keys
from accounts.models import ApiKey, Membership, Organisation, User
from accounts.services import api_key_create, membership_add, organisation_create
from usage.engine.refresh import usage_refresh
from usage.models import ApiCallCount
from usage.months import add_months, month_bounds, month_of
from usage.services import JobInput, jobs_upsert

DEMO_ORG_ID = "org_demo"
DEMO_USERS = [("demo-owner", Membership.Role.OWNER), ("demo-member", Membership.Role.MEMBER)]
DEMO_PASSWORD = "demo-password"  # noqa: S105 - published on purpose: it is the demo login
DEMO_KEYS = ["production", "staging", "batch-jobs"]
LANGUAGES = [("Hindi", 40), ("Tamil", 22), ("Telugu", 14), ("Punjabi", 10), ("Bengali", 8), ("Marathi", 6)]
# Jobs per month, oldest first; the busy month crosses into tier2 (rank 1,001 and above).
MONTHLY_JOBS = [180, 220, 260, 310, 360, 420, 1350, 480, 520, 560, 610, 240]


def _jobs_for(organisation: Organisation, key_ids: list[int], now: dt.datetime) -> list[JobInput]:
    rng = random.Random(20250101)  # noqa: S311 - demo data only
    first_month = add_months(month_of(now), -(len(MONTHLY_JOBS) - 1))
    languages, weights = zip(*LANGUAGES, strict=True)
    jobs = []
    for offset, count in enumerate(MONTHLY_JOBS):
        month = add_months(first_month, offset)
        start, end = month_bounds(month)
        span = int((end - start).total_seconds())
        # Spread over the whole month and drop what is still in the future, so that a later run
        # adds the jobs that have "happened" since but never moves an existing one.
        moments = sorted(start + dt.timedelta(seconds=rng.randrange(span)) for _ in range(count))
        for number, created_at in enumerate(moments, start=1):
            status = rng.choices(["completed", "failed", "processing", "queued"], [92, 5, 2, 1])[0]
            done = status == "completed"
            duration = int(rng.lognormvariate(5.3, 0.6))
            jobs.append(
                JobInput(
                    organisation_id=organisation.pk,
                    api_key_id=rng.choices(key_ids + [None], [60, 15, 15, 10])[0],
                    external_id=f"demo-{month:%Y-%m}-{number:05d}",
                    created_at=created_at,
                    language=rng.choices(languages, weights)[0],
                    audio_duration_seconds=duration,
                    status=status,
                    has_transcript=done or rng.random() < 0.3,
                    has_lrc=done and rng.random() < 0.97,
                    transcription_tokens=duration * rng.randint(2, 4) if status != "queued" else 0,
                    note_tokens=duration * rng.randint(3, 6) if done else 0,
                )
            )
    return [job for job in jobs if job.created_at <= now]


class Command(BaseCommand):
    help = (
        "Create a demo organisation with users, keys and a year of jobs (idempotent), and say how to log in."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed even with DEBUG=False (the demo users have a published password).",
        )

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "DEBUG is off: this looks like production, and the demo users have a published "
                "password. Refusing to seed; pass --force to seed anyway."
            )
        now = timezone.now()
        with transaction.atomic():
            organisation = Organisation.objects.filter(org_id=DEMO_ORG_ID).first() or organisation_create(
                name="Demo Audio Co", org_id=DEMO_ORG_ID, free_job_allowance=50
            )
            for username, role in DEMO_USERS:
                user = User.objects.filter(username=username).first()
                if user is None:
                    user = User.objects.create_user(username, f"{username}@example.com", DEMO_PASSWORD)
                membership_add(organisation=organisation, user=user, role=role)
            demo_key = keys.key_from_seed(settings.SECRET_KEY.encode())
            key_ids = []
            for name in DEMO_KEYS:
                api_key = ApiKey.objects.filter(organisation=organisation, name=name).first()
                if api_key is None:
                    generated = demo_key if name == DEMO_KEYS[0] else None
                    api_key = api_key_create(
                        organisation=organisation, name=name, generated=generated
                    ).api_key
                key_ids.append(api_key.pk)
            jobs = _jobs_for(organisation, key_ids, now)
            for start in range(0, len(jobs), 2000):
                jobs_upsert(jobs=jobs[start : start + 2000])
            first_month = add_months(month_of(now), -(len(MONTHLY_JOBS) - 1))
            for offset, count in enumerate(MONTHLY_JOBS[:-1]):
                for index, key_id in enumerate(key_ids):
                    ApiCallCount.objects.get_or_create(
                        api_key_id=key_id,
                        month=add_months(first_month, offset),
                        defaults={"organisation": organisation, "calls": count * (3 - index)},
                    )
        usage_refresh(organisation_id=organisation.pk)
        production = ApiKey.objects.get(organisation=organisation, name=DEMO_KEYS[0])
        self.stdout.write(
            f"Demo organisation: {organisation.name} ({organisation.org_id}), {len(jobs)} jobs."
        )
        self.stdout.write(
            f"Log in at http://127.0.0.1:8000/accounts/login/ as demo-owner or demo-member, "
            f"password {DEMO_PASSWORD}"
        )
        if keys.key_matches(demo_key.plaintext, production.digest, signing_keys=[settings.SECRET_KEY]):
            self.stdout.write(f"Demo API key ({production.name}): {demo_key.plaintext}")
            self.stdout.write(
                f'Try: curl -H "Authorization: Bearer {demo_key.plaintext}" '
                "http://127.0.0.1:8000/api/v1/usage"
            )
        else:
            self.stdout.write(
                "The demo API key was made with another SECRET_KEY; create a new one with "
                f"'manage.py createapikey {DEMO_ORG_ID} NAME'."
            )
