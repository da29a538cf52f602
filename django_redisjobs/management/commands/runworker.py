"""``manage.py runworker``: run a worker until stopped (Django Channels has a command
of the same name; install only one of the two apps in a project)."""

import functools
import logging
import sys
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_redisjobs import events
from django_redisjobs.conf import Settings, get_settings
from django_redisjobs.event_relay import EventRelay
from django_redisjobs.exceptions import (
    RedisJobsConfigurationError,
    RedisUnavailable,
    WorkerCrashed,
)
from django_redisjobs.job import now_epoch_ms
from django_redisjobs.keys import is_safe_name
from django_redisjobs.management.summary import (
    burst_summary,
    default_queues,
    left_behind,
)
from django_redisjobs.queue import JobStore, get_store
from django_redisjobs.registry import autodiscover, registry
from django_redisjobs.relay import OutboxRelay
from django_redisjobs.worker import (
    Supervisor,
    SupervisorConfig,
    Worker,
    WorkerConfig,
    install_supervisor_signal_handlers,
)
from django_redisjobs.worker.config import default_worker_id

# The most jobs held ahead per thread. The worker holds fewer when attempts take
# long (worker/claim.py), so this bounds short jobs: 16 per thread measured best for
# no-op jobs (docs/benchmarks.md), and long jobs are not hoarded.
PREFETCH_PER_THREAD = 16

_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


class Command(BaseCommand):
    help = (
        "Run a worker that claims jobs from Redis and runs them. SIGTERM or SIGINT "
        "stops claiming and waits for running jobs (up to --grace); a second SIGINT "
        "exits at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queues",
            default="",
            help="Comma-separated queues to serve, in priority order; with "
            "weights, as in high:5,default:3,low:1, each claim picks the order at "
            "random by weight (default: REDISJOBS['DEFAULT_QUEUE'], then every "
            "other queue that a background function or a cron entry names, by "
            "name).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=4,
            help="Threads for sync jobs (default 4). Async jobs share one event "
            "loop; at most concurrency + prefetch jobs are held at once.",
        )
        parser.add_argument(
            "--prefetch",
            type=int,
            default=None,
            help="Most jobs claimed ahead of free threads, so claims come in "
            "batches and a freed thread finds its next job in memory; the worker "
            "holds about 50 ms of work per thread ahead, up to this (default: 16 x "
            "--concurrency).",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Run the ready jobs, then exit with a summary.",
        )
        parser.add_argument(
            "--name", default=None, help="Worker id (default host.pid.random)."
        )
        parser.add_argument(
            "--max-jobs",
            type=int,
            default=None,
            help="Exit after claiming this many jobs.",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=30.0,
            help="Seconds to wait for running jobs at stop before requeuing them "
            "(default 30). An idle worker notices a stop within 2 s.",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help="Run this many worker processes under a supervisor, each with "
            "--concurrency threads. A job past its timeout then has its process "
            "killed and replaced, and a process that dies is replaced and its jobs "
            "recovered at once; --max-jobs applies to each process, which is "
            "replaced when it reaches it (default: one worker in this process).",
        )
        parser.add_argument(
            "--no-relay",
            action="store_true",
            help="With REDISJOBS['OUTBOX'] on, do not run the outbox relay in this "
            "worker (run manage.py relay_outbox instead).",
        )
        parser.add_argument(
            "--no-scheduler",
            action="store_true",
            help="Do not promote delayed jobs, enqueue cron entries or recover lost "
            "ones in this worker.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        _configure_logging(options["verbosity"])
        try:
            settings = get_settings()
        except RedisJobsConfigurationError as err:
            raise CommandError(str(err)) from err
        # Before the config: the default queues are those the functions name.
        autodiscover(settings.autodiscover_modules)
        config = self._config(options, settings)
        try:
            store = get_store()
        except RedisJobsConfigurationError as err:
            raise CommandError(str(err)) from err
        try:
            store.ping()
            refused = store.check_access(now_epoch_ms())
        except RedisUnavailable as err:
            raise CommandError(f"Redis is unreachable: {err}") from err
        if refused:
            raise CommandError(
                "The Redis user may not run commands the worker needs: "
                f"{'; '.join(refused)}. See docs/scaling.md#acls."
            )
        relay = _start_relay(config, options)
        event_relay = _start_event_relay(config)
        try:
            by_status = self._run(config, options, store)
        finally:
            if relay is not None:
                relay.stop()
            if event_relay is not None:
                event_relay.stop()
        if config.burst:
            left = left_behind(store, config.queues)
            self.stdout.write(burst_summary(by_status, config.queues, left))

    def _run(
        self, config: WorkerConfig, options: dict[str, Any], store: JobStore
    ) -> dict[str, int]:
        if options["processes"] is not None:
            return self._supervise(config, options)
        worker = Worker(config, store=store, functions=registry)
        worker.install_signal_handlers()
        try:
            return worker.run().by_status
        except WorkerCrashed as err:
            raise CommandError(str(err), returncode=1) from err

    def _supervise(
        self, config: WorkerConfig, options: dict[str, Any]
    ) -> dict[str, int]:
        supervisor = Supervisor(
            SupervisorConfig(
                processes=options["processes"],
                worker=config,
                prepare=functools.partial(_configure_logging, options["verbosity"]),
            ),
            functions=registry,
        )
        install_supervisor_signal_handlers(supervisor)
        if supervisor.run() != 0:
            raise CommandError(
                "Stopped at once by a second interrupt; the jobs that were running "
                "return to their queues when their leases expire.",
                returncode=1,
            )
        return supervisor.by_status

    def _config(self, options: dict[str, Any], settings: Settings) -> WorkerConfig:
        queues, weights = parse_queues(options["queues"])
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be 1 or more.")
        if options["prefetch"] is not None and options["prefetch"] < 0:
            raise CommandError("--prefetch must be 0 or more.")
        if options["max_jobs"] is not None and options["max_jobs"] < 1:
            raise CommandError("--max-jobs must be 1 or more.")
        if options["grace"] < 0:
            raise CommandError("--grace must be 0 or more.")
        if options["processes"] is not None and options["processes"] < 1:
            raise CommandError("--processes must be 1 or more.")
        return WorkerConfig(
            queues=queues or default_queues(settings, registry),
            concurrency=options["concurrency"],
            prefetch=options["prefetch"]
            if options["prefetch"] is not None
            else PREFETCH_PER_THREAD * options["concurrency"],
            name=options["name"],
            burst=options["burst"],
            max_jobs=options["max_jobs"],
            scheduler=not options["no_scheduler"],
            grace=timedelta(seconds=options["grace"]),
            weights=weights,
        )


def parse_queues(value: str) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """Split ``--queues``: names, and their weights when every name has one."""
    names: list[str] = []
    weights: list[int] = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, colon, weight = (part.strip() for part in item.partition(":"))
        if not is_safe_name(name):
            raise CommandError(f"Queue name {name!r} is not valid.")
        if colon and not (weight.isdigit() and int(weight) >= 1):
            raise CommandError(
                f"Weight {weight!r} of queue {name!r} is not valid; use a whole "
                "number of 1 or more."
            )
        if name in names:
            raise CommandError(f"--queues {value!r} names queue {name!r} twice.")
        names.append(name)
        weights += [int(weight)] if colon else []
    if value.strip() and not names:
        raise CommandError(f"--queues {value!r} names no queue.")
    if weights and len(weights) != len(names):
        raise CommandError(
            f"--queues {value!r} gives weights to some queues only; give every "
            "queue a weight, or none."
        )
    return tuple(names), tuple(weights) or None


def _start_relay(config: WorkerConfig, options: dict[str, Any]) -> OutboxRelay | None:
    """The outbox relay thread, when the outbox is on. A burst worker first moves
    every row, however new, so the jobs committed before it started are served."""
    settings = get_settings()
    if not settings.outbox or options["no_relay"]:
        return None
    relay = OutboxRelay(settings.outbox_databases)
    if config.burst:
        try:
            relay.sweep(grace=timedelta(0))
        except Exception as err:
            logging.getLogger("django_redisjobs.relay").warning(
                "outbox relay cannot deliver before the burst (%s: %s)",
                type(err).__name__,
                err,
            )
        return None
    relay.start()
    return relay


def _start_event_relay(config: WorkerConfig) -> EventRelay | None:
    """The event relay threads, when the project's modules subscribe to events.
    A burst worker first relays every waiting entry, then runs the jobs."""
    subscriptions = events.subscriptions()
    if not subscriptions:
        return None
    relay = EventRelay(subscriptions, config.name or default_worker_id())
    if config.burst:
        try:
            relay.drain()
        except RedisUnavailable as err:
            raise CommandError(f"Redis is unreachable: {err}") from err
        return None
    relay.start()
    return relay


def _configure_logging(verbosity: int) -> None:
    """Show the app's logs unless the project configured a handler for them."""
    level = _LEVELS.get(verbosity, logging.INFO)
    logger = logging.getLogger("django_redisjobs")
    logger.setLevel(level)
    # Django's own line at each django.tasks task's start and end is a per-job
    # line too: -v 0 silences it with ours (Django's default LOGGING passes it
    # at INFO, a log record built per line even when no handler shows it).
    logging.getLogger("django.tasks").setLevel(level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        )
        logger.addHandler(handler)
