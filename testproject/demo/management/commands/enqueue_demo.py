"""Enqueue a mix of demo jobs and record their ids for ``demo_report``."""

import contextlib
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from django_redisjobs import JobHandle
from testproject.demo import jobfile
from testproject.demo.tasks import (
    crunch_numbers,
    flaky_sync,
    import_feed,
    reject_bad_input,
    render_thumbnail,
    send_reminder_email,
)

KINDS = 6
THUMBNAIL_SIZES = ((64, 48), (96, 64), (128, 96))


class _RollBack(Exception):
    """Raised inside ``atomic()`` to roll the demo transaction back on purpose."""


class Command(BaseCommand):
    help = (
        "Enqueue a mix of demo jobs: reminder emails (on commit, inside "
        "transaction.atomic()), thumbnails, flaky syncs, number crunching, async "
        "feed imports and bad input, plus one email enqueued in a rolled-back "
        "transaction that never reaches Redis. Prints one line per job id and saves "
        "the list for demo_report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--count",
            type=int,
            default=3,
            metavar="N",
            help=(
                f"Jobs of each of the {KINDS} kinds to enqueue (default: 3, i.e. 18 "
                "jobs plus the rolled-back one)."
            ),
        )
        parser.add_argument(
            "--failure-rate",
            type=float,
            default=0.5,
            metavar="P",
            help="Chance, 0..1, that each flaky_sync attempt fails (default: 0.5).",
        )
        parser.add_argument(
            "--file",
            type=Path,
            default=None,
            help="Where to save the job list (default: var/demo_jobs.json).",
        )
        parser.add_argument(
            "--no-next",
            action="store_true",
            help="Do not print the commands to run next (scripts/demo runs them).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count: int = options["count"]
        failure_rate: float = options["failure_rate"]
        if count < 1:
            raise CommandError(f"--count must be 1 or more, got {count!r}.")
        if not 0.0 <= failure_rate <= 1.0:
            raise CommandError(
                f"--failure-rate must be within 0..1, got {failure_rate!r}."
            )
        path: Path = options["file"] or jobfile.default_path()
        self.jobs: list[jobfile.EnqueuedJob] = []
        self._enqueue_emails(count)
        self._enqueue_rolled_back()
        self._enqueue_work(count, failure_rate)
        jobfile.save(path, self.jobs)
        written = sum(not job.rolled_back for job in self.jobs)
        rolled_back = len(self.jobs) - written
        self.stdout.write(
            self.style.SUCCESS(
                f"Enqueued {written} jobs ({rolled_back} more rolled back, never "
                f"written); job list saved to {path}."
            )
        )
        if not options["no_next"]:
            self.stdout.write(
                "Next: 'python manage.py runworker --burst', then "
                "'python manage.py demo_report'."
            )

    def _record(self, handle: JobHandle, function: str, note: str) -> None:
        rolled_back = note == "rolled back"
        self.jobs.append(
            jobfile.EnqueuedJob(handle.id, handle.queue, function, rolled_back)
        )
        self.stdout.write(f"{note:<11} {function:<19} {handle.queue:<8} {handle.id}")

    def _enqueue_emails(self, count: int) -> None:
        # Inside atomic() the id exists at once; the job reaches Redis on commit.
        with transaction.atomic():
            for index in range(count):
                handle = send_reminder_email.delay(
                    f"user{index + 1}@example.com",
                    "Your trial ends soon",
                    days_left=index % 7 + 1,
                )
                self._record(handle, "send_reminder_email", "on commit")
        self.stdout.write(f"committed: {count} reminder email jobs written to Redis")

    def _enqueue_rolled_back(self) -> None:
        with contextlib.suppress(_RollBack), transaction.atomic():
            handle = send_reminder_email.delay(
                "nobody@example.com", "This email is never sent", days_left=0
            )
            self._record(handle, "send_reminder_email", "rolled back")
            raise _RollBack
        self.stdout.write("rolled back: that reminder email job was never written")

    def _enqueue_work(self, count: int, failure_rate: float) -> None:
        for index in range(count):
            width, height = THUMBNAIL_SIZES[index % len(THUMBNAIL_SIZES)]
            handle = render_thumbnail.enqueue(
                kwargs={
                    "name": f"Product photo {index + 1}",
                    "width": width,
                    "height": height,
                },
            )
            self._record(handle, "render_thumbnail", "enqueued")
            handle = flaky_sync.delay(1000 + index, failure_rate=failure_rate)
            self._record(handle, "flaky_sync", "enqueued")
            handle = crunch_numbers.delay(20_000 * (index % 10 + 1))
            self._record(handle, "crunch_numbers", "enqueued")
            handle = import_feed.delay(f"https://example.com/feeds/{index + 1}.xml")
            self._record(handle, "import_feed", "enqueued")
            # Every other value is negative, so at least one job goes dead at once.
            value = index + 1 if index % 2 else -(index + 1)
            handle = reject_bad_input.delay(value)
            self._record(handle, "reject_bad_input", "enqueued")
