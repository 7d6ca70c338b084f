import sys

from django.core.management.base import BaseCommand, CommandError

from usage.importing import jobs_import_file

from ._progress import progress_bar


def _count_lines(path: str) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


class Command(BaseCommand):
    # The system checks look at the web layer (URLs, admin, templates), which an import does not
    # touch; skipping them saves a fifth of a second per run. Every server start still runs them.
    requires_system_checks = []
    help = (
        "Import jobs from a JSON Lines file (one job per line), upserting by (org_id, external_id). "
        "Every line is validated first; any invalid line aborts the whole import unless --skip-invalid."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="path of the JSON Lines file")
        parser.add_argument(
            "--skip-invalid", action="store_true", help="report invalid lines but import the valid ones"
        )

    def handle(self, *args, file, skip_invalid, **options):
        try:
            # Sizing the bar reads the file once more: only worth it when a bar is drawn.
            lines = _count_lines(file) if sys.stderr.isatty() else None
            open(file, "rb").close()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        with progress_bar(total=lines and lines * 2, desc="import_jobs") as advance:
            try:
                report = jobs_import_file(file, skip_invalid=skip_invalid, progress=advance)
            except UnicodeDecodeError as exc:
                raise CommandError(f"{file} is not UTF-8 text: {exc}") from exc
        for number, reason in report.errors:
            self.stderr.write(f"line {number}: {reason}")
        if not report.imported:
            raise CommandError(
                f"{report.invalid} invalid line(s) of {report.lines}; nothing was imported "
                "(fix them, or pass --skip-invalid to import the valid lines)"
            )
        skipped = f", {report.invalid} invalid line(s) skipped" if report.invalid else ""
        self.stdout.write(
            f"Imported {report.created + report.updated} job(s) from {report.lines} line(s): "
            f"{report.created} created, {report.updated} updated{skipped}."
        )
