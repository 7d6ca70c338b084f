"""State-only: the custom ``usage.recompute_usage`` permission (no SQL)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("usage", "0005_admin_indexes"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="monthlyusage",
            options={
                "permissions": [("recompute_usage", "Can recompute the stored usage of organisations")],
                "verbose_name_plural": "monthly usage",
            },
        ),
    ]
