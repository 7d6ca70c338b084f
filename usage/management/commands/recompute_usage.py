from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organisation
from usage.engine.recompute import usage_recompute
from usage.months import parse_month

from ._progress import progress_bar


class Command(BaseCommand):
    help = (
        "Recompute stored usage aggregates from the raw jobs (all organisations and months by default), "
        "correcting only what differs. The nightly Celery task does the same work."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="ORG_ID", help="only this organisation")
        parser.add_argument("--month", metavar="YYYY-MM", help="only this month")

    def handle(self, *args, org, month, **options):
        organisation_ids = None
        if org:
            organisation = Organisation.objects.filter(org_id=org).first()
            if organisation is None:
                raise CommandError(f"unknown organisation {org!r}")
            organisation_ids = [organisation.pk]
        months = None
        if month:
            try:
                months = [parse_month(month)]
            except ValueError as exc:
                raise CommandError(f"--month: {exc}, e.g. 2025-01") from exc
        with progress_bar(total=None, desc="recompute_usage", unit="month") as advance:
            result = usage_recompute(organisation_ids=organisation_ids, months=months, progress=advance)
        self.stdout.write(
            f"Recomputed {result.organisations} organisation(s), {result.months} month(s): "
            f"{result.rows_corrected} aggregate row(s) corrected, {result.jobs_retiered} job tier(s) "
            f"and {result.free_flags_fixed} free flag(s) fixed."
        )
