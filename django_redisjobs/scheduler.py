"""One scheduler tick: make due jobs ready, enqueue due cron fire times, take back
expired leases, trim listings.

The scheduler only moves jobs between Redis structures; it never runs one. Every
worker runs it (unless ``--no-scheduler``); each step is an atomic script, so any
number of schedulers can tick at once without doing the same move twice.

A lease runs out when its holder stops renewing it, which is what a dead worker
looks like, but also what every worker looks like after Redis was unreachable for
everyone (a restart, a pause, a cut): live holders could not renew either. So after
a gap in its own contact with Redis, and when it starts, a scheduler waits one lease
before recovering anything, which gives live holders that time to renew their
leases or record their outcomes first (`note_contact`).
"""

import dataclasses
import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .conf import Settings
from .cron import CronEntry, parse_schedule, slot_job_id
from .exceptions import UnknownBackgroundFunction
from .job import Job, from_ms, new_job_id, to_ms
from .policy import JobDefaults, JobOptions, resolve_options
from .queue import EnqueueRequest, JobStore
from .registry import FunctionSpec, Registry, registry
from .serialization import encode_arguments

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SchedulerConfig:
    """Batch sizes and intervals, in ms, of the scheduler's steps."""

    promote_limit: int = 500
    recover_limit: int = 100
    recover_every_ms: int = 1_000
    trim_every_ms: int = 60_000
    # A job delayed while the scheduler sleeps is seen at its next tick: this cap
    # keeps a delayed job's start within a second of its due time, with margin.
    max_sleep_ms: int = 500
    #: A cron fire time more than this late counts as missed (see `MissedPolicy`).
    cron_on_time_ms: int = 60_000
    #: Cron entry state that no scheduler has refreshed (every `trim_every_ms`)
    #: for this long is deleted: the entry left every deployed configuration.
    cron_forget_ms: int = 600_000
    #: A longer silence than this between round trips to Redis may have let live
    #: workers' leases run out; a holder renews every third of a lease, so its lease
    #: runs out only after two thirds of a lease without contact.
    contact_gap_ms: int = 15_000
    #: How long recovery waits after such a gap, and at start: one lease.
    recovery_hold_ms: int = 30_000

    @classmethod
    def for_lease(cls, lease_ms: int) -> "SchedulerConfig":
        """Intervals scaled to the lease: recovery runs at least every third of it."""
        return cls(
            recover_every_ms=max(min(1_000, lease_ms // 3), 1),
            contact_gap_ms=lease_ms // 2,
            recovery_hold_ms=lease_ms,
        )


class Scheduler:
    """Keeps a set of queues' delayed and leased jobs moving."""

    def __init__(
        self,
        store: JobStore,
        queues: Sequence[str],
        config: SchedulerConfig | None = None,
        *,
        cron: Sequence[CronEntry] | None = None,
        functions: Registry = registry,
    ) -> None:
        """`cron` defaults to every entry of this process (`cron_entries`)."""
        self.store = store
        self.queues = tuple(queues)
        self.config = config or SchedulerConfig()
        if cron is None:
            cron = cron_entries(store.settings, functions)
        self.cron = CronStep(store, cron, functions, self.config)
        self._next_recover_ms = 0
        self._next_trim_ms = 0
        self._last_contact_ms: int | None = None
        #: Due ms of the earliest scheduled job seen by the last tick; -1 if none.
        self.next_due_ms = -1
        # A burst worker ticks from its claiming thread and its maintenance thread;
        # a recovery hold (`note_contact`) set while a tick runs must stay set.
        self._lock = threading.Lock()

    def tick(self, now_ms: int) -> int:
        """Do what is due at `now_ms`; return the ms at which to tick next."""
        with self._lock:
            return self._tick(now_ms)

    def _tick(self, now_ms: int) -> int:
        wake_ms = now_ms + self.config.max_sleep_ms
        self.next_due_ms = -1
        for queue in self.queues:
            next_due = self._promote(queue, now_ms)
            if next_due != -1:
                wake_ms = min(wake_ms, next_due)
                if self.next_due_ms == -1 or next_due < self.next_due_ms:
                    self.next_due_ms = next_due
        next_fire = self.cron.tick(now_ms)
        if next_fire is not None:
            wake_ms = min(wake_ms, next_fire)
        if now_ms >= self._next_recover_ms:
            for queue in self.queues:
                self._recover(queue, now_ms)
            self._next_recover_ms = now_ms + self.config.recover_every_ms
        wake_ms = min(wake_ms, self._next_recover_ms)
        if now_ms >= self._next_trim_ms:
            for queue in self.queues:
                self.store.trim_finished(queue, now_ms)
            self.store.trim_workers(now_ms)
            self._next_trim_ms = now_ms + self.config.trim_every_ms
        return max(wake_ms, now_ms)

    def note_contact(self, now_ms: int) -> None:
        """Record a successful round trip to Redis at `now_ms`.

        The first call, and a call after a silence longer than `contact_gap_ms`,
        hold lease recovery for `recovery_hold_ms`: a lease that ran out during the
        silence may belong to a live worker that could not renew it.
        """
        with self._lock:
            last = self._last_contact_ms
            self._last_contact_ms = now_ms
            if last is not None and now_ms - last <= self.config.contact_gap_ms:
                return
            hold_until = now_ms + self.config.recovery_hold_ms
            self._next_recover_ms = max(self._next_recover_ms, hold_until)
        if last is not None:
            logger.warning(
                "no contact with redis for %d ms; lease recovery waits %d ms so live "
                "workers can renew first",
                now_ms - last,
                self.config.recovery_hold_ms,
            )

    def _promote(self, queue: str, now_ms: int) -> int:
        limit = self.config.promote_limit
        while True:
            moved, next_due = self.store.promote_due(queue, now_ms, limit)
            if moved:
                logger.debug("promoted due jobs queue=%s count=%d", queue, moved)
            # A full batch may have left more due jobs behind: go again.
            if moved < limit:
                return next_due

    def _recover(self, queue: str, now_ms: int) -> None:
        recovered = self.store.recover_expired(queue, now_ms, self.config.recover_limit)
        for job_id in recovered.job_ids:
            logger.warning(
                "recovered job from a lost worker job id=%s queue=%s", job_id, queue
            )
        if recovered.dead:
            logger.warning(
                "jobs out of attempts after a lost worker queue=%s count=%d",
                queue,
                recovered.dead,
            )


def cron_entries(settings: Settings, functions: Registry) -> list[CronEntry]:
    """``REDISJOBS["CRON"]``, then ``@background(cron=...)`` functions; an entry in
    settings replaces a decorated function's entry of the same name."""
    entries = list(settings.cron)
    named = {entry.name for entry in entries}
    for spec in functions.specs():
        if spec.cron is not None and spec.name not in named:
            schedule = parse_schedule(spec.cron, settings.time_zone, entry=spec.name)
            entries.append(CronEntry(spec.name, spec.name, schedule))
    return entries


@dataclass(frozen=True)
class _Target:
    """A cron entry with the function its jobs run and the options they get."""

    entry: CronEntry
    spec: FunctionSpec
    options: JobDefaults

    @property
    def queue(self) -> str:
        return self.options.queue


class CronStep:
    """Enqueues each due cron fire time once, however many schedulers run.

    Fire times are computed here; `JobStore.claim_cron` decides atomically in
    Redis which of them no scheduler handled yet. Between fire times a tick costs
    no Redis call.
    """

    def __init__(
        self,
        store: JobStore,
        entries: Sequence[CronEntry],
        functions: Registry,
        config: SchedulerConfig,
    ) -> None:
        self.store = store
        self.config = config
        self.targets = [t for t in (_target(e, functions, store) for e in entries) if t]
        self._next_ms: dict[str, int] = {}
        self._handled: dict[str, datetime] = {}  # this scheduler's view of watermarks
        self._known_queues: set[str] = set()
        self._started_ms: int | None = None
        self._next_upkeep_ms = 0

    def tick(self, now_ms: int) -> int | None:
        """Enqueue what is due at `now_ms`; return the next fire ms (None if none)."""
        if self._started_ms is None:
            self._started_ms = now_ms
        for target in self.targets:
            if self._next_ms.get(target.entry.name, now_ms) <= now_ms:
                self._fire(target, now_ms)
        if now_ms >= self._next_upkeep_ms:
            self._upkeep(now_ms, self._started_ms)
            self._next_upkeep_ms = now_ms + self.config.trim_every_ms
        return min(self._next_ms.values(), default=None)

    def _fire(self, target: _Target, now_ms: int) -> None:
        entry, now = target.entry, _moment(now_ms)
        on_time = timedelta(milliseconds=self.config.cron_on_time_ms)
        fire_times = entry.due(self._handled.get(entry.name), now, on_time)
        requests = [_request(target, fire, now_ms) for fire in fire_times]
        if requests and target.queue not in self._known_queues:
            self.store.add_known_queues([target.queue])
            self._known_queues.add(target.queue)
        claim = self.store.claim_cron(
            entry.name, target.queue, requests, now_ms, now_ms
        )
        for job_id in claim.job_ids:
            logger.info(
                "cron entry fired name=%s job id=%s queue=%s",
                entry.name,
                job_id,
                target.queue,
            )
        handled = now
        if claim.watermark_ms is not None:
            # Another scheduler's clock may run ahead of this one.
            handled = max(now, _moment(claim.watermark_ms))
        self._handled[entry.name] = handled
        self._next_ms[entry.name] = to_ms(entry.schedule.next_after(handled))

    def _upkeep(self, now_ms: int, started_ms: int) -> None:
        """Say which entries this scheduler knows; forget those no scheduler knows."""
        known: dict[str, list[str]] = defaultdict(list)
        for target in self.targets:
            known[target.queue].append(target.entry.name)
        if known:
            self.store.touch_cron_entries(known, now_ms)
        # Until every other scheduler had a chance to refresh its entries, an
        # unseen entry may still be live: wait one forget period after start.
        if now_ms - started_ms < self.config.cron_forget_ms:
            return
        cutoff_ms = now_ms - self.config.cron_forget_ms
        for queue in self.store.known_queues():
            unknown = sorted(self.store.cron_entry_names(queue) - set(known[queue]))
            forgotten = self.store.forget_cron_entries(queue, unknown, cutoff_ms)
            if forgotten:
                logger.info(
                    "forgot removed cron entries queue=%s count=%d", queue, forgotten
                )


def _moment(ms: int) -> datetime:
    return from_ms(ms) or _EPOCH


def _target(entry: CronEntry, functions: Registry, store: JobStore) -> _Target | None:
    try:
        spec = functions.load(entry.function)
    except UnknownBackgroundFunction as err:
        logger.error("cron entry skipped name=%s: %s", entry.name, err)
        return None
    # The entry's queue plays the part of a call's: the same layers as `.delay()`.
    # A cron job takes no unique key: its id, made from the fire time, already
    # makes it happen once.
    options = resolve_options(spec, JobOptions(queue=entry.queue), store.settings)
    return _Target(entry, spec, options)


def _request(target: _Target, fire_time: datetime, now_ms: int) -> EnqueueRequest:
    """The job of one fire time; its id is the fire time's identity."""
    entry, options = target.entry, target.options
    args_json, kwargs_json = encode_arguments(entry.args, entry.kwargs)
    job = Job(
        id=slot_job_id(entry.name, fire_time),
        func=target.spec.name,
        queue=options.queue,
        args=list(entry.args),
        kwargs=dict(entry.kwargs),
        priority=options.priority,
        max_attempts=options.max_attempts,
        timeout=options.timeout,
        result_ttl=options.result_ttl,
        enqueued_at=from_ms(now_ms),
        run_at=fire_time,
    )
    return EnqueueRequest(job, args_json, kwargs_json)


def run_entry_now(
    entry: CronEntry, functions: Registry, store: JobStore, now_ms: int
) -> str:
    """Enqueue one extra job of `entry` now; its schedule is not changed.

    The job gets a fresh id (not a fire time's), so it never stands in for a
    scheduled run. Returns its id; raises `UnknownBackgroundFunction` when the
    entry's function cannot be loaded, and `RedisUnavailable`.
    """
    target = _target(entry, functions, store)
    if target is None:
        raise UnknownBackgroundFunction(
            f"Cron entry {entry.name!r} names {entry.function!r}, which is not a "
            "background function."
        )
    slot = _request(target, from_ms(now_ms) or _EPOCH, now_ms)
    job = dataclasses.replace(slot.job, id=new_job_id(now_ms), run_at=None)
    store.add_known_queues([job.queue])
    store.enqueue([dataclasses.replace(slot, job=job)], now_ms)
    return job.id
