"""``manage.py jobs``: the operator's actions from the shell, for scripts and cron.

A thin shell over the same `JobStore` methods the admin uses: it parses
arguments, calls one method, and prints what happened.
"""

from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_redisjobs.exceptions import JobDoesNotExist, RedisUnavailable
from django_redisjobs.job import now_epoch_ms
from django_redisjobs.queue import Cancelled, JobState, JobStore, get_store
from django_redisjobs.queue.operations import BULK_LIMIT

_STATES = [state.value for state in JobState]


class Command(BaseCommand):
    help = (
        "Inspect queues and act on jobs: info, retry, cancel, purge, empty, "
        "pause, resume. Run 'manage.py jobs <action> --help' for each one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        info = actions.add_parser("info", help="Show each queue's job counts.")
        info.add_argument("queues", nargs="*", help="Queues to show (default: all).")
        retry = actions.add_parser(
            "retry",
            help="Run dead, cancelled or retrying jobs again (same id, attempt "
            "count from 0, history kept).",
        )
        retry.add_argument("job_ids", nargs="*", help="Ids of the jobs to retry.")
        retry.add_argument("--queue", help="The jobs' queue (default: looked up).")
        retry.add_argument(
            "--all-dead",
            metavar="QUEUE",
            help="Retry every dead job of QUEUE instead of the ids given.",
        )
        _limit(retry)
        cancel = actions.add_parser(
            "cancel",
            help="Cancel waiting jobs; ask running ones to stop.",
        )
        cancel.add_argument("job_ids", nargs="+", help="Ids of the jobs to cancel.")
        cancel.add_argument("--queue", help="The jobs' queue (default: looked up).")
        purge = actions.add_parser("purge", help="Delete a queue's dead jobs.")
        purge.add_argument("queue")
        _limit(purge)
        empty = actions.add_parser("empty", help="Delete a queue's ready jobs.")
        empty.add_argument("queue")
        _limit(empty)
        for name, text in (
            (
                "pause",
                "Stop workers from claiming a queue's jobs (it still "
                "accepts new ones).",
            ),
            ("resume", "Let workers claim a paused queue's jobs again."),
        ):
            actions.add_parser(name, help=text).add_argument("queue")

    def handle(self, *args: Any, **options: Any) -> None:
        store = get_store()
        action = options["action"]
        try:
            getattr(self, f"_{action}")(store, options)
        except RedisUnavailable as err:
            raise CommandError(str(err)) from err

    def _info(self, store: JobStore, options: dict[str, Any]) -> None:
        queues = options["queues"] or store.known_queues()
        if not queues:
            self.stdout.write("No queues yet.")
            return
        header = "queue".ljust(20) + "".join(s.rjust(11) for s in _STATES)
        self.stdout.write(header + "  paused")
        for summary in store.summaries(queues):
            line = summary.name.ljust(20) + "".join(
                str(summary.counts[JobState(s)]).rjust(11) for s in _STATES
            )
            self.stdout.write(line + ("  yes" if summary.paused else "  no"))

    def _retry(self, store: JobStore, options: dict[str, Any]) -> None:
        if options["all_dead"]:
            count = store.retry_dead(
                options["all_dead"], now_epoch_ms(), options["limit"]
            )
            self.stdout.write(f"{count} dead job(s) retried.")
            return
        if not options["job_ids"]:
            raise CommandError("Give job ids, or --all-dead QUEUE.")
        for queue, ids in _by_queue(store, options["job_ids"], options["queue"]):
            codes = store.retry(ids, queue, now_epoch_ms())
            for job_id, code in zip(ids, codes, strict=True):
                said = {
                    1: "retried",
                    0: "not retried: it is not dead, cancelled or retrying",
                    -1: "not found",
                }[code]
                self.stdout.write(f"{job_id}: {said}")

    def _cancel(self, store: JobStore, options: dict[str, Any]) -> None:
        for queue, ids in _by_queue(store, options["job_ids"], options["queue"]):
            found = store.cancel_many(ids, queue, now_epoch_ms())
            for job_id, outcome in zip(ids, found, strict=True):
                said = {
                    None: "not found",
                    Cancelled.ENDED: "cancelled",
                    Cancelled.REQUESTED: "running: asked to stop",
                    Cancelled.ALREADY_FINISHED: "had already ended",
                }[outcome]
                self.stdout.write(f"{job_id}: {said}")

    def _purge(self, store: JobStore, options: dict[str, Any]) -> None:
        count = store.purge_dead(options["queue"], options["limit"])
        self.stdout.write(f"{count} dead job(s) deleted from {options['queue']!r}.")

    def _empty(self, store: JobStore, options: dict[str, Any]) -> None:
        count = store.empty_ready(options["queue"], options["limit"])
        self.stdout.write(f"{count} ready job(s) deleted from {options['queue']!r}.")

    def _pause(self, store: JobStore, options: dict[str, Any]) -> None:
        queue = options["queue"]
        was_running = store.pause(queue)
        self.stdout.write(
            f"Queue {queue!r} paused."
            if was_running
            else f"Queue {queue!r} was already paused."
        )

    def _resume(self, store: JobStore, options: dict[str, Any]) -> None:
        queue = options["queue"]
        was_paused = store.resume(queue)
        self.stdout.write(
            f"Queue {queue!r} resumed."
            if was_paused
            else f"Queue {queue!r} was not paused."
        )


def _limit(parser: CommandParser) -> None:
    parser.add_argument(
        "--limit",
        type=int,
        default=BULK_LIMIT,
        help=f"The most jobs to act on in this run (default {BULK_LIMIT}).",
    )


def _by_queue(
    store: JobStore, job_ids: Sequence[str], queue: str | None
) -> list[tuple[str, list[str]]]:
    """The ids grouped by queue; without `queue`, each id is looked up."""
    if queue:
        return [(queue, list(job_ids))]
    grouped: dict[str, list[str]] = {}
    for job_id in job_ids:
        try:
            grouped.setdefault(store.locate(job_id), []).append(job_id)
        except JobDoesNotExist as err:
            raise CommandError(str(err)) from err
    return list(grouped.items())
