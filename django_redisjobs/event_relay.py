"""The event relay: turns stream entries into one job per subscriber.

One thread per subscription reads the subscriber's consumer group with a
blocking XREADGROUP (no polling while idle), enqueues a job per entry under the
id `events.job_id_for(event id, subscriber)`, then acknowledges the entries.
Enqueueing first is what makes it safe: a relay killed between the two leaves
the entries pending, another relay takes them over after a lease (XAUTOCLAIM),
enqueues them again (the enqueue script stores a known id once) and
acknowledges. A janitor thread looks, once a minute, for groups of subscribers
this code no longer has, and moves their entries to the event's dead stream
with the reason, rather than leave them pending for ever.
"""

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta

from . import events, serialization
from .conf import get_settings
from .exceptions import RedisJobsError, RedisUnavailable
from .job import now_epoch_ms
from .queue import EnqueueRequest, StreamEntry, get_store

logger = logging.getLogger(__name__)

BLOCK = timedelta(seconds=2)
BATCH = 100
JANITOR_EVERY = timedelta(seconds=60)
_MAX_BACKOFF_S = 5.0


class EventRelay:
    """Relays every subscription of this process as consumer `consumer`."""

    def __init__(
        self,
        subscriptions: Sequence[events.Subscription],
        consumer: str,
        *,
        lease: timedelta | None = None,
        block: timedelta = BLOCK,
    ) -> None:
        self.subscriptions = list(subscriptions)
        self.consumer = consumer
        self.lease = lease or get_settings().lease
        self.block = block
        self.enqueued = 0  # jobs this relay's enqueues stored
        self.dead = 0  # entries it moved to a dead stream
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # -- one step, for threads, bursts and tests ----------------------------------

    def prepare(self) -> None:
        """Create each subscriber's group where it does not exist yet."""
        store = get_store()
        for sub in self.subscriptions:
            store.ensure_group(sub.event, sub.subscriber, events.STARTS[sub.start])

    def step(self, sub: events.Subscription, *, block: bool) -> int:
        """Take over entries idle for a lease, then read new ones (waiting up to
        `block` when asked); relay them. How many entries it handled."""
        store = get_store()
        lease_ms = int(self.lease.total_seconds() * 1000)
        handled = 0
        stolen = store.take_over(
            sub.event, sub.subscriber, self.consumer, lease_ms, BATCH
        )
        handled += self._relay(sub, stolen)
        block_ms = int(self.block.total_seconds() * 1000) if block else None
        fresh = store.read_group(
            sub.event, sub.subscriber, self.consumer, BATCH, block_ms
        )
        handled += self._relay(sub, fresh)
        return handled

    def drain(self) -> int:
        """Relay every entry waiting now, without blocking (a burst worker)."""
        self.prepare()
        total = 0
        for sub in self.subscriptions:
            while (handled := self.step(sub, block=False)) > 0:
                total += handled
        total += self.sweep_orphans()
        return total

    def sweep_orphans(self) -> int:
        """Move the entries of groups whose subscriber this code lacks to the
        event's dead stream; how many."""
        store = get_store()
        known = {(sub.event, sub.subscriber) for sub in events.subscriptions()}
        group_prefix = f"{store.prefix}:"
        moved = 0
        for event, groups in store.event_groups().items():
            for group in groups:
                name = str(group.get("name", ""))
                if not name.startswith(group_prefix):
                    continue  # a consumer outside this project
                subscriber = name[len(group_prefix) :]
                if (event, subscriber) in known:
                    continue
                moved += self._bury_group(event, subscriber)
        return moved

    # -- threads ------------------------------------------------------------------

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(
                target=self._run,
                args=(sub,),
                name=f"events-{sub.subscriber}",
                daemon=True,
            )
            for sub in self.subscriptions
        ]
        threads.append(
            threading.Thread(target=self._janitor, name="events-janitor", daemon=True)
        )
        for thread in threads:
            thread.start()
        return threads

    def stop(self) -> None:
        self._stop.set()

    def _run(self, sub: events.Subscription) -> None:
        backoff = 0.0
        prepared = False
        while not self._stop.is_set():
            try:
                if not prepared:
                    get_store().ensure_group(
                        sub.event, sub.subscriber, events.STARTS[sub.start]
                    )
                    prepared = True
                self.step(sub, block=True)
                backoff = 0.0
            except RedisUnavailable as err:
                backoff = min(max(backoff * 2, 0.1), _MAX_BACKOFF_S)
                logger.warning(
                    "event relay cannot reach redis subscriber=%s: %s",
                    sub.subscriber,
                    err,
                )
                self._stop.wait(backoff)
            except Exception:
                logger.exception("event relay failed subscriber=%s", sub.subscriber)
                self._stop.wait(_MAX_BACKOFF_S)

    def _janitor(self) -> None:
        while not self._stop.wait(JANITOR_EVERY.total_seconds()):
            try:
                self.sweep_orphans()
            except Exception:
                logger.exception("event relay could not sweep orphaned groups")

    # -- the relay itself ---------------------------------------------------------

    def _relay(self, sub: events.Subscription, entries: Sequence[StreamEntry]) -> int:
        """Enqueue one job per entry, then acknowledge them all. An entry that
        cannot become a job goes to the dead stream and is acknowledged too."""
        if not entries:
            return 0
        store = get_store()
        requests: list[EnqueueRequest] = []
        for entry in entries:
            try:
                payload = serialization.decode(entry.fields["payload"], "payload")
                job_id = events.job_id_for(entry.fields["id"], sub.subscriber)
                requests.append(sub.function.request_with_id(job_id, [payload]))
            except (KeyError, RedisJobsError) as err:
                self._dead_letter(sub.event, sub.subscriber, entry, f"{err!r}")
        if requests:
            stored = store.enqueue(requests, now_epoch_ms())
            with self._lock:
                self.enqueued += sum(stored)
        store.ack(sub.event, sub.subscriber, [entry.entry_id for entry in entries])
        return len(entries)

    def _bury_group(self, event: str, subscriber: str) -> int:
        store = get_store()
        moved = 0
        reason = (
            f"No subscriber {subscriber!r} for event {event!r} in this code: the "
            "function or its @subscribe was removed. Delete its consumer group "
            "when its events are no longer wanted."
        )
        while True:
            entries = [
                *store.take_over(event, subscriber, self.consumer, 0, BATCH),
                *store.read_group(event, subscriber, self.consumer, BATCH, None),
            ]
            if not entries:
                return moved
            for entry in entries:
                self._dead_letter(event, subscriber, entry, reason)
            store.ack(event, subscriber, [entry.entry_id for entry in entries])
            moved += len(entries)

    def _dead_letter(
        self, event: str, subscriber: str, entry: StreamEntry, reason: str
    ) -> None:
        logger.error(
            "event entry not relayed event=%s subscriber=%s entry=%s: %s",
            event,
            subscriber,
            entry.entry_id,
            reason,
        )
        fields = {
            **{f"entry_{k}": v for k, v in entry.fields.items()},
            "entry": entry.entry_id,
            "subscriber": subscriber,
            "reason": reason,
            "dead_ms": str(now_epoch_ms()),
        }
        get_store().dead_letter(event, fields, get_settings().event_maxlen)
        with self._lock:
            self.dead += 1
