"""Data: the staff roles "Support" and "Finance" as permission groups (see ``accounts.roles``).

Support views everything, revokes API keys and recomputes usage; Finance views everything and
edits pricing plans, organisations' plans and free-job allowances.
"""

from django.db import migrations


def create_groups(apps, schema_editor):
    from accounts.roles import roles_sync

    roles_sync(apps=apps, using=schema_editor.connection.alias)


def delete_groups(apps, schema_editor):
    from accounts.roles import ROLES

    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_custom_permissions"),
        ("usage", "0006_recompute_usage_permission"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
