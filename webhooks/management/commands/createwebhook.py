from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organisation
from portal.errors import DomainError
from webhooks.models import SUBSCRIBABLE_EVENT_TYPES
from webhooks.services import webhook_endpoint_create


class Command(BaseCommand):
    help = (
        "Create a webhook endpoint of an organisation (all event types unless --event is given); "
        "its signing secret is printed once, alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("org_id")
        parser.add_argument("url", help="an https:// URL on a public address")
        parser.add_argument(
            "--event",
            action="append",
            dest="events",
            metavar="TYPE",
            choices=SUBSCRIBABLE_EVENT_TYPES,
            help="an event type to send (repeatable); default: all of them",
        )

    def handle(self, *args, org_id, url, events, **options):
        organisation = Organisation.objects.filter(org_id=org_id).first()
        if organisation is None:
            raise CommandError(f"unknown organisation {org_id!r}")
        try:
            created = webhook_endpoint_create(organisation=organisation, url=url, event_types=events)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        endpoint = created.endpoint
        self.stderr.write(f"Created webhook endpoint {endpoint.pk} for {org_id}: {endpoint.url}")
        self.stderr.write(f"Events: {', '.join(endpoint.event_types)}")
        self.stderr.write("Store the signing secret now: it is shown only once.")
        self.stdout.write(created.secret)
