"""Data: the staff roles "Support" and "Finance" as permission groups.

Both see every model of the portal (accounts and usage). Support may also revoke API keys and
recompute usage; Finance may also edit pricing plans and their tiers, and move organisations to
another plan or change their free-job allowance. Anything else (creating keys, editing jobs,
deactivating organisations, users) stays with superusers or explicitly granted staff.

Re-running it is harmless: it adds what is missing and never removes a permission granted by hand.
"""

from django.db import migrations

VIEW_APPS = ("accounts", "usage")
SUPPORT = "Support"
FINANCE = "Finance"
EXTRA_PERMISSIONS = {
    SUPPORT: [
        ("accounts", "revoke_apikey"),
        ("usage", "recompute_usage"),
    ],
    FINANCE: [
        ("usage", "add_pricingplan"),
        ("usage", "change_pricingplan"),
        ("usage", "delete_pricingplan"),
        ("usage", "add_pricingtier"),
        ("usage", "change_pricingtier"),
        ("usage", "delete_pricingtier"),
        ("accounts", "change_free_job_allowance"),
        ("accounts", "change_organisation_plan"),
    ],
}


def create_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after the whole migrate run (post_migrate); a fresh
    # database needs them now.
    for app_label in VIEW_APPS:
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view_all = list(
        Permission.objects.filter(content_type__app_label__in=VIEW_APPS, codename__startswith="view_")
    )
    for name, extra in EXTRA_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        granted = [
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in extra
        ]
        group.permissions.add(*view_all, *granted)


def delete_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(EXTRA_PERMISSIONS)).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_custom_permissions"),
        ("usage", "0004_recompute_usage_permission"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
