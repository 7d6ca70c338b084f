from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organisation
from accounts.services import api_key_create
from portal.errors import DomainError


class Command(BaseCommand):
    help = "Create an API key for an organisation; its secret is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("org_id")
        parser.add_argument("name", help="the key's name, unique within the organisation")

    def handle(self, *args, org_id, name, **options):
        organisation = Organisation.objects.filter(org_id=org_id).first()
        if organisation is None:
            raise CommandError(f"unknown organisation {org_id!r}")
        try:
            created = api_key_create(organisation=organisation, name=name)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"Created key {created.api_key.name!r} ({created.api_key.prefix}) for {org_id}.")
        self.stderr.write("Store the secret now: it is shown only once.")
        self.stdout.write(created.plaintext)
