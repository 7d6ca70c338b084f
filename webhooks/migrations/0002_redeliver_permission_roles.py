"""The ``redeliver_delivery`` permission, and the staff roles brought up to ``accounts.roles``:
both view the webhooks' models, Support redelivers and revokes service keys."""

from django.db import migrations


def roles_update(apps, schema_editor):
    from accounts.roles import roles_sync

    roles_sync(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("accounts", "0006_servicekey"),
        ("accounts", "0004_support_finance_groups"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="delivery",
            options={
                "ordering": ["-created_at", "-pk"],
                "permissions": [("redeliver_delivery", "Can redeliver webhook deliveries")],
                "verbose_name_plural": "deliveries",
            },
        ),
        # Going back leaves the groups as they are: roles_sync never removes a permission.
        migrations.RunPython(roles_update, migrations.RunPython.noop),
    ]
