"""Index-only: what the staff admin's job list needs to stay fast on millions of jobs."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("usage", "0004_job_organisation_no_extra_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["created_at", "id"], name="job_created_idx"),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["external_id"], name="job_external_id_idx"),
        ),
        migrations.AddIndex(
            model_name="languageusage",
            index=models.Index(fields=["language"], name="languageusage_language_idx"),
        ),
    ]
