"""The staff roles, as permission groups: what Support and Finance may do in the admin.

Both roles view every model of the portal's own apps (webhook endpoints, events and delivery
attempts included); each adds a few permissions: Support revokes API and service keys, recomputes
usage and redelivers webhook deliveries; Finance edits pricing. Anything else (creating keys,
editing jobs or webhook endpoints, deactivating organisations, managing users) stays with
superusers or staff granted it one by one. ``roles_sync`` brings the groups up to this definition without ever
removing a permission granted by hand; it runs in the data migration that introduced the roles
and after every ``migrate`` (and test-database flush), so models added later are visible to both
roles with no further data migration.
"""

from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q

VIEW_ALL_APPS = ("accounts", "usage", "webhooks")
SUPPORT = "Support"
FINANCE = "Finance"
ROLES: dict[str, tuple[tuple[str, str], ...]] = {
    SUPPORT: (
        ("accounts", "revoke_apikey"),
        ("accounts", "revoke_servicekey"),
        ("usage", "recompute_usage"),
        ("webhooks", "redeliver_delivery"),
    ),
    FINANCE: (
        ("usage", "add_pricingplan"),
        ("usage", "change_pricingplan"),
        ("usage", "delete_pricingplan"),
        ("usage", "add_pricingtier"),
        ("usage", "change_pricingtier"),
        ("usage", "delete_pricingtier"),
        ("accounts", "change_free_job_allowance"),
        ("accounts", "change_organisation_plan"),
    ),
}


def roles_sync(*, apps=global_apps, using: str = DEFAULT_DB_ALIAS) -> None:
    """Create the role groups if missing and add the permissions they lack.

    ``apps`` is a migration's historical registry or the live one; only its models are used.
    """
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created once migrate has finished; the groups need them now.
    for app_label in VIEW_ALL_APPS:
        try:
            app_config = apps.get_app_config(app_label)
        except LookupError:  # a migration's registry before this app's first migration
            continue
        models_module = getattr(app_config, "models_module", None)
        # A migration's app stubs have no models module, which create_permissions reads as "no models".
        app_config.models_module = models_module or True
        try:
            create_permissions(app_config, verbosity=0, using=using, apps=apps)
        finally:
            app_config.models_module = models_module

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = Permission.objects.using(using)
    view_all = permissions.filter(content_type__app_label__in=VIEW_ALL_APPS, codename__startswith="view_")
    for name, extra in ROLES.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        wanted = Q(pk__in=[])
        for app_label, codename in extra:
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        group.permissions.add(*permissions.filter(Q(pk__in=view_all) | wanted))


ROLES_MIGRATION = ("accounts", "0004_support_finance_groups")


def roles_sync_after_migrate(sender, *, using=DEFAULT_DB_ALIAS, apps=global_apps, **kwargs) -> None:
    """``post_migrate`` receiver: keep the roles complete as models are added.

    Does nothing while the migration that introduced the roles is not applied, so migrating
    back past it really removes them.
    """
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    if ROLES_MIGRATION in MigrationRecorder(connections[using]).applied_migrations():
        roles_sync(apps=apps, using=using)
