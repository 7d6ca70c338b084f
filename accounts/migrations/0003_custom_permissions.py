"""State-only: custom permissions the staff admin checks (no SQL)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_initial"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="apikey",
            options={
                "ordering": ["organisation", "name"],
                "permissions": [("revoke_apikey", "Can revoke API keys")],
                "verbose_name": "API key",
            },
        ),
        migrations.AlterModelOptions(
            name="organisation",
            options={
                "ordering": ["name"],
                "permissions": [
                    ("change_free_job_allowance", "Can change the free-job allowance of an organisation"),
                    ("change_organisation_plan", "Can move an organisation to another pricing plan"),
                ],
            },
        ),
    ]
