"""Events: one action, many subscribers, each subscriber's work a real job.

`publish("user.registered", {"user_id": 42})` appends an entry to the event's
Redis Stream. A background function decorated with `@subscribe(...)` becomes a
consumer group on that stream; the event relay (event_relay.py, run by
`runworker`) turns each entry into one job per subscriber, with a job id derived
from the event id and the subscriber, so a relay that dies between enqueueing
and acknowledging enqueues nothing twice. docs/events.md gives the stream layout
as a contract for consumers outside this project.
"""

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from . import serialization
from .background_function import BackgroundFunction
from .conf import get_settings
from .exceptions import InvalidJob
from .job import new_job_id, now_epoch_ms
from .keys import is_safe_name
from .queue import get_store

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=BackgroundFunction[Any, Any])

#: Where a new subscriber's group starts reading: "new" for events published
#: after the group exists ("$"), "all" for every event the stream still holds.
STARTS = {"new": "$", "all": "0"}


@dataclass(frozen=True)
class Subscription:
    """One background function subscribed to one event name."""

    event: str
    function: BackgroundFunction[Any, Any]
    start: str = "new"

    @property
    def subscriber(self) -> str:
        """The function's dotted name: its group's name, and its jobs' `func`."""
        return self.function.spec.name


_subscriptions: dict[tuple[str, str], Subscription] = {}


def subscriptions() -> list[Subscription]:
    """Every subscription made in this process (modules imported so far)."""
    return list(_subscriptions.values())


def _check_event(event: object) -> str:
    if not is_safe_name(event):
        raise InvalidJob(
            f"Event name {event!r} is not valid: use letters, digits, '_', '.' and "
            "'-' only, as in 'user.registered'."
        )
    return str(event)


def subscribe(event: str, *, start: str = "new") -> Callable[[F], F]:
    """Make a background function run, as its own job, for each `event` published.

    Put it above ``@background``; the function is called with the event's payload
    as its one argument, on the function's own queue, with its own retries.
    `start` says where the subscriber's group begins when a worker first creates
    it: "new" (events published from then on) or "all" (every event the stream
    still holds). Raises `InvalidJob` for a bad event name or start, `TypeError`
    when what it decorates is not a background function.
    """
    name = _check_event(event)
    if start not in STARTS:
        raise InvalidJob(f"start={start!r} is not one of {sorted(STARTS)}.")

    def decorate(function: F) -> F:
        if not isinstance(function, BackgroundFunction):
            raise TypeError(
                f"@subscribe({name!r}) goes above @background; it got {function!r}."
            )
        subscription = Subscription(name, function, start)
        _subscriptions[(name, subscription.subscriber)] = subscription
        return function

    return decorate


def job_id_for(event_id: str, subscriber: str) -> str:
    """The id of the job `subscriber` gets for the event `event_id`: the same
    every time, so enqueueing it again stores nothing."""
    digest = hashlib.sha256(f"{event_id}\n{subscriber}".encode()).hexdigest()
    return digest[:32]


def publish(
    event: str,
    payload: Any = None,
    *,
    on_commit: bool | None = None,
    using: str | None = None,
) -> str:
    """Append `event` with `payload` (a JSON value) to its stream; return the
    event's id, known before the write.

    Inside `transaction.atomic()` the entry is written when the transaction
    commits, and never if it rolls back (``REDISJOBS["ON_COMMIT"]``, or
    `on_commit` for this call). Raises `InvalidJob` for a bad event name,
    `SerializationError` for a payload JSON cannot carry unchanged (nothing is
    written), and `RedisUnavailable` when Redis cannot be reached outside a
    transaction; after a commit that failure is logged at ERROR, with the
    payload, since the caller has moved on.
    """
    name = _check_event(event)
    payload_json = serialization.encode(payload, f"Event {name!r} payload")
    settings = get_settings()
    event_id = new_job_id()
    fields = {
        "id": event_id,
        "event": name,
        "payload": payload_json,
        "published_ms": str(now_epoch_ms()),
    }
    write = partial(get_store().append_event, name, fields, settings.event_maxlen)
    alias = using or DEFAULT_DB_ALIAS
    defer = settings.on_commit if on_commit is None else on_commit
    if defer and connections[alias].in_atomic_block:
        transaction.on_commit(partial(_write_logged, write, fields), using=alias)
    else:
        write()
    return event_id


def _write_logged(write: Callable[[], Any], fields: dict[str, str]) -> None:
    """The on-commit write: it never raises, so the commit's other callbacks run."""
    try:
        write()
    except Exception:
        logger.exception(
            "event publish after commit failed; event lost unless replayed "
            "id=%s event=%s payload=%s",
            fields["id"],
            fields["event"],
            fields["payload"],
        )
