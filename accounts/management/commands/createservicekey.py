from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organisation
from accounts.services import service_key_create
from portal.errors import DomainError


class Command(BaseCommand):
    help = (
        "Create a service key of the job platform (POST /api/v1/ingest/jobs); its secret is printed "
        "once, alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the key's name, unique among service keys")
        parser.add_argument(
            "--org",
            action="append",
            default=[],
            dest="org_ids",
            metavar="ORG_ID",
            help="an organisation the key may write jobs of (repeatable; none given: every organisation)",
        )

    def handle(self, *args, name, org_ids, **options):
        wanted = set(org_ids)
        organisations = list(Organisation.objects.filter(org_id__in=wanted))
        unknown = sorted(wanted - {organisation.org_id for organisation in organisations})
        if unknown:
            raise CommandError(f"unknown organisation(s): {', '.join(repr(org_id) for org_id in unknown)}")
        try:
            created = service_key_create(name=name, organisations=organisations)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        scope = ", ".join(sorted(wanted)) if wanted else "every organisation"
        self.stderr.write(
            f"Created service key {created.service_key.name!r} ({created.service_key.prefix}) for {scope}."
        )
        self.stderr.write("Store the secret now: it is shown only once.")
        self.stdout.write(created.plaintext)
