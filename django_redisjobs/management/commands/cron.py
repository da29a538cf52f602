"""``manage.py cron``: list cron entries, their next fire times and last outcome."""

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_redisjobs.conf import get_settings
from django_redisjobs.cron import CronEntry, slot_job_id
from django_redisjobs.exceptions import (
    JobDoesNotExist,
    RedisJobsConfigurationError,
    RedisUnavailable,
    UnknownBackgroundFunction,
)
from django_redisjobs.queue import CronState, JobStore, get_store
from django_redisjobs.registry import autodiscover, registry
from django_redisjobs.scheduler import cron_entries

_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


class Command(BaseCommand):
    help = (
        "List cron entries (REDISJOBS['CRON'] and @background(cron=...)) with their "
        "next fire times and the outcome of the job of their last fire time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--next",
            type=int,
            default=3,
            help="How many upcoming fire times to show per entry (default 3).",
        )
        parser.add_argument(
            "--now",
            type=datetime.fromisoformat,
            default=None,
            help="Show fire times after this ISO 8601 moment instead of the "
            "current time (UTC when it has no offset).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["next"] < 1:
            raise CommandError("--next must be 1 or more.")
        try:
            settings = get_settings()
        except RedisJobsConfigurationError as err:
            raise CommandError(str(err)) from err
        now = options["now"] or datetime.now(UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        autodiscover(settings.autodiscover_modules)
        entries = cron_entries(settings, registry)
        if not entries:
            self.stdout.write("No cron entries.")
            return
        store = get_store()
        try:
            for entry in entries:
                self._show(store, entry, now, options["next"])
        except RedisUnavailable as err:
            raise CommandError(str(err)) from err

    def _show(
        self, store: JobStore, entry: CronEntry, now: datetime, count: int
    ) -> None:
        try:
            spec = registry.load(entry.function)
        except UnknownBackgroundFunction as err:
            self.stdout.write(f"{entry.name}\n  error:    {err}")
            return
        queue = entry.queue or spec.queue or store.settings.default_queue
        upcoming = []
        moment = now
        for _ in range(count):
            moment = entry.schedule.next_after(moment)
            upcoming.append(moment.astimezone(entry.schedule.zone).strftime(_FORMAT))
        missed = entry.missed.value
        if entry.missed == "all":
            missed = f"all (at most {entry.missed_limit})"
        state = store.cron_states(queue, [entry.name])[0]
        self.stdout.write(
            f"{entry.name}\n"
            f"  function: {entry.function} (queue {queue})\n"
            f"  schedule: {entry.expression} in {entry.timezone}, missed: {missed}\n"
            f"  next:     {', '.join(upcoming)}\n"
            f"  last:     {_last_run(store, entry, queue, state)}"
        )


def _last_run(store: JobStore, entry: CronEntry, queue: str, state: CronState) -> str:
    """The last fire time and what became of its job."""
    if state.last_fired is None:
        return "never fired"
    fired = state.last_fired.astimezone(entry.schedule.zone).strftime(_FORMAT)
    job_id = slot_job_id(entry.name, state.last_fired)
    try:
        job = store.get(job_id, queue)
    except JobDoesNotExist:
        return f"{fired}, job {job_id} expired (past its result TTL)"
    outcome = job.status.value
    if job.error is not None and job.status.is_finished:
        outcome += f" ({job.error.exc_class}: {job.error.message})"
    return f"{fired}, job {job_id} {outcome}"
