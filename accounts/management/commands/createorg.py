from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organisation
from accounts.services import organisation_create


class Command(BaseCommand):
    help = "Create an organisation and print its id."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--org-id", help="org_ followed by lowercase letters/digits (default: random)")
        parser.add_argument("--plan", help="pricing plan name (default: standard)")
        parser.add_argument("--free-jobs", type=int, default=0, help="free job allowance (default 0)")

    def handle(self, *args, name, org_id, plan, free_jobs, **options):
        if free_jobs < 0:
            raise CommandError("--free-jobs must be 0 or more")
        pricing_plan = None
        if plan:
            # Plans belong to the usage app, reached through the relation so this app needs no import of it.
            plans = Organisation._meta.get_field("plan").related_model.objects
            pricing_plan = plans.filter(name=plan).first()
            if pricing_plan is None:
                known = ", ".join(plans.values_list("name", flat=True))
                raise CommandError(f"unknown plan {plan!r} (known: {known})")
        try:
            organisation = organisation_create(
                name=name, org_id=org_id, plan=pricing_plan, free_job_allowance=free_jobs
            )
        except ValidationError as exc:
            messages = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
            raise CommandError(messages) from exc
        self.stdout.write(organisation.org_id)
