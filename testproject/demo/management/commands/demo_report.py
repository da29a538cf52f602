"""Show what became of the jobs ``enqueue_demo`` recorded."""

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_redisjobs import JobDoesNotExist, JobHandle, JobStatus, RedisUnavailable
from testproject.demo import jobfile

OUTCOME_WIDTH = 60
# Ids start with 48 bits of time, so jobs enqueued together share a prefix; the
# random tail tells them apart.
SHORT_ID_CHARS = 8
HEADERS = ("function", "id", "queue", "status", "attempts", "result / error")


@dataclass(frozen=True)
class Row:
    """One line of the report, already formatted as text."""

    function: str
    short_id: str
    queue: str
    status: str
    attempts: str
    outcome: str

    def cells(self) -> tuple[str, ...]:
        return (
            self.function,
            self.short_id,
            self.queue,
            self.status,
            self.attempts,
            self.outcome,
        )


def _truncate(text: str, width: int = OUTCOME_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _outcome(handle: JobHandle) -> str:
    if handle.error is not None:
        exc_name = handle.error.exc_class.rpartition(".")[2]
        return _truncate(f"{exc_name}: {handle.error.message}")
    if handle.status.is_finished:
        return _truncate(json.dumps(handle.result))
    if handle.status is JobStatus.ACTIVE:
        return f"running, {handle.progress:.0%} done"
    return "-"


def _plain(text: str) -> str:
    return text


def _row(job: jobfile.EnqueuedJob) -> Row:
    short_id = "…" + job.id[-SHORT_ID_CHARS:]
    try:
        handle = JobHandle.load(job.id, job.queue)
        status = handle.status.value
    except JobDoesNotExist:
        if job.rolled_back:
            outcome = "never written: its transaction rolled back"
            return Row(job.function, short_id, job.queue, "rolled back", "-", outcome)
        outcome = "not in Redis (expired or deleted)"
        return Row(job.function, short_id, job.queue, "missing", "-", outcome)
    outcome = _outcome(handle)
    if job.rolled_back:
        outcome = _truncate("UNEXPECTED, rolled back yet stored: " + outcome)
    return Row(job.function, short_id, job.queue, status, str(handle.attempts), outcome)


class Command(BaseCommand):
    help = (
        "Print a table of the jobs enqueue_demo recorded: function, short id, queue, "
        "status, attempts, and result or error, then the number of jobs in each "
        "status. Reads the job list enqueue_demo saved; changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            type=Path,
            default=None,
            help="Job list to read (default: var/demo_jobs.json).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"] or jobfile.default_path()
        try:
            jobs = jobfile.load(path)
        except FileNotFoundError as err:
            raise CommandError(
                f"No job list at {path}; run 'python manage.py enqueue_demo' first."
            ) from err
        except (OSError, ValueError) as err:
            raise CommandError(f"Cannot read the job list at {path}: {err}") from err
        try:
            rows = [_row(job) for job in jobs]
        except RedisUnavailable as err:
            raise CommandError(f"Cannot read jobs from Redis: {err}") from err
        self._write_table(rows)
        # Counted as enqueue_demo counts: the jobs written to Redis, then the
        # rolled-back ones that never were.
        counts = Counter(row.status for row in rows if row.status != "rolled back")
        summary = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
        rolled_back = sum(job.rolled_back for job in jobs)
        self.stdout.write(
            f"\n{sum(counts.values())} jobs enqueued: {summary or 'none'}; "
            f"{rolled_back} more rolled back, never written."
        )

    def _style_for(self, status: str) -> Callable[[str], str]:
        styles = {
            "succeeded": self.style.SUCCESS,
            "dead": self.style.ERROR,
            "retrying": self.style.WARNING,
            "cancelled": self.style.WARNING,
            "missing": self.style.WARNING,
        }
        return styles.get(status, _plain)

    def _write_table(self, rows: list[Row]) -> None:
        widths = [len(header) for header in HEADERS]
        for row in rows:
            widths = [
                max(w, len(cell)) for w, cell in zip(widths, row.cells(), strict=True)
            ]
        header = "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))
        self.stdout.write(self.style.MIGRATE_HEADING(header.rstrip()))
        self.stdout.write("  ".join("-" * w for w in widths))
        status_column = HEADERS.index("status")
        for row in rows:
            cells = [c.ljust(w) for c, w in zip(row.cells(), widths, strict=True)]
            # Pad before styling: colour codes would otherwise count as width.
            cells[status_column] = self._style_for(row.status)(cells[status_column])
            self.stdout.write("  ".join(cells).rstrip())
