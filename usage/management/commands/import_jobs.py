import sys
from contextlib import nullcontext

from django.core.management.base import BaseCommand, CommandError

from usage.importing import ImportAborted, ImportReport, jobs_import_file

from ._progress import progress_bar


def _count_lines(path: str) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _written(report: ImportReport) -> str:
    """What an aborted import leaves behind, for the end of its error message."""
    jobs = f"{report.created} created, {report.updated} updated"
    if not report.written_lines:
        return "nothing was imported"
    if report.written_lines < report.last_line:
        return f"the jobs of lines 1-{report.written_lines} were imported ({jobs}), none after"
    return f"every job was imported ({jobs}); the next read of their usage refreshes it"


class Command(BaseCommand):
    # The system checks look at the web layer (URLs, admin, templates), which an import does not
    # touch; skipping them saves a fifth of a second per run. Every server start still runs them.
    requires_system_checks = []
    help = (
        "Import jobs from a JSON Lines file (one job per line; '-' reads standard input), upserting "
        "by (org_id, external_id). Every line is validated first; any invalid line aborts the whole "
        "import unless --skip-invalid. A file that is not UTF-8 is never imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="path of the JSON Lines file, or - for standard input")
        parser.add_argument(
            "--skip-invalid", action="store_true", help="report invalid lines but import the valid ones"
        )

    def handle(self, *args, file, skip_invalid, **options):
        if file == "-":
            source, lines = nullcontext(sys.stdin.buffer), None
        else:
            try:
                # Sizing the bar reads the file once more: only worth it when a bar is drawn.
                lines = _count_lines(file) if sys.stderr.isatty() else None
                source = open(file, "rb")  # noqa: SIM115 (closed by the with below)
            except OSError as exc:
                raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        with source as stream, progress_bar(total=lines and lines * 2, desc="import_jobs") as advance:
            try:
                report = jobs_import_file(stream, skip_invalid=skip_invalid, progress=advance)
            except ImportAborted as exc:
                self._write_errors(exc.report)
                raise CommandError(f"{exc}; {_written(exc.report)}") from exc
        self._write_errors(report)
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

    def _write_errors(self, report: ImportReport) -> None:
        for number, reason in report.errors:
            self.stderr.write(f"line {number}: {reason}")
