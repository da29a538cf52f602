"""The outbox: jobs written as rows in the caller's transaction, moved to Redis
after the commit (``REDISJOBS["OUTBOX"]``).

Without it, a job enqueued in `transaction.atomic()` is written to Redis by an
on-commit callback, and is lost if Redis cannot be reached at that moment. With
it, the job is a row of `OutboxEntry` committed with the caller's own rows;
`deliver` moves committed rows to Redis and deletes them in one database
transaction, so a row leaves the table only once its job is in Redis. The
committing process delivers its own rows right after the commit (`transactions`),
so the usual case waits for no poll; the relay (`relay.OutboxRelay`) sweeps what
is left: rows whose delivery failed or whose process died before it.

Idempotence: the row's key is the job id, and enqueue_jobs.lua keeps the first
write of an id, so a row delivered twice (a relay killed between the Redis write
and the delete) is stored once. On PostgreSQL (and any database with
``SELECT ... FOR UPDATE SKIP LOCKED``) concurrent deliveries lock the rows they
take and skip the others'; elsewhere (SQLite) two relays may both write a row's
job, and the script's rule keeps it to one job.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import connections, transaction
from django.utils import timezone

from .exceptions import InvalidJob
from .job import now_epoch_ms
from .job_hash import enqueue_fields, from_fields
from .queue import EnqueueRequest, Placed, get_store

if TYPE_CHECKING:
    from .models import OutboxEntry

logger = logging.getLogger(__name__)


@dataclass
class Delivery:
    """What one `deliver` call moved: each stored request with its `Placed`."""

    placed: dict[str, tuple[EnqueueRequest, Placed]] = field(default_factory=dict)
    #: Rows that could not be read back as jobs: logged at ERROR and deleted.
    damaged: int = 0

    def __len__(self) -> int:
        return len(self.placed) + self.damaged

    @property
    def stored(self) -> int:
        """Jobs this delivery stored; the others were in Redis already (a row
        delivered before, by a relay that died before deleting it) or met a
        unique job that holds their key."""
        return sum(1 for _, where in self.placed.values() if where.stored)


def _table() -> "type[OutboxEntry]":
    """The model, imported on first use: this module is imported with the
    package (`transactions` needs it), before Django's app registry is ready,
    and a model cannot be defined before then."""
    from .models import OutboxEntry

    return OutboxEntry


def check_database(using: str, databases: Sequence[str]) -> None:
    """Refuse, at the door, a transaction whose rows no relay would sweep."""
    if using not in databases:
        raise InvalidJob(
            f"The outbox is on, and database {using!r} is not in "
            f"REDISJOBS['OUTBOX_DATABASES'] {list(databases)!r}: no relay would "
            "move its jobs to Redis. Add it there, or pass on_commit=False."
        )


def put(requests: Sequence[EnqueueRequest], using: str) -> None:
    """Write `requests` as outbox rows on `using`, inside its open transaction."""
    now = timezone.now()
    table = _table()
    table.objects.using(using).bulk_create(
        [
            table(
                id=r.job.id,
                queue=r.job.queue,
                fields=json.dumps(
                    enqueue_fields(r.job, r.args_json, r.kwargs_json),
                    separators=(",", ":"),
                ),
                at_front=r.at_front,
                created_at=now,
            )
            for r in requests
        ]
    )


def discard(job_ids: Sequence[str], using: str) -> None:
    """Delete the rows of jobs cancelled before their commit: never relayed."""
    if job_ids:
        _table().objects.using(using).filter(id__in=list(job_ids)).delete()


def deliver(
    using: str,
    *,
    ids: Sequence[str] | None = None,
    older_than: timedelta = timedelta(0),
    limit: int = 500,
) -> Delivery:
    """Move up to `limit` committed rows of `using` to Redis, oldest first, and
    delete them; `ids` restricts it to those jobs, `older_than` to rows at least
    that old (the producer delivers its own rows; the relay leaves it a moment).

    One database transaction: the rows are read (locked, skipping locked rows,
    where the database can), written to Redis in one round trip, then deleted.
    Raises `RedisUnavailable` when Redis refuses the write: the transaction
    rolls back and every row stays for a later delivery. Database errors (a
    lock timeout on SQLite, say) propagate the same way.
    """
    table = _table()
    rows = table.objects.using(using).order_by("created_at", "id")
    if ids is not None:
        rows = rows.filter(id__in=list(ids))
    if older_than:
        rows = rows.filter(created_at__lte=timezone.now() - older_than)
    delivery = Delivery()
    with transaction.atomic(using=using):
        if connections[using].features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        batch = list(rows[:limit])
        if not batch:
            return delivery
        requests = []
        for row in batch:
            request = _request(row)
            if request is None:
                delivery.damaged += 1
            else:
                requests.append(request)
        placed = get_store().enqueue_detailed(requests, now_epoch_ms())
        table.objects.using(using).filter(id__in=[row.id for row in batch]).delete()
    delivery.placed = {
        r.job.id: (r, where) for r, where in zip(requests, placed, strict=True)
    }
    return delivery


def pending(using: str) -> tuple[int, datetime | None]:
    """How many rows wait on `using`, and when the oldest was written."""
    rows = _table().objects.using(using)
    oldest = rows.order_by("created_at").values_list("created_at", flat=True).first()
    return rows.count(), oldest


def _request(row: "OutboxEntry") -> EnqueueRequest | None:
    """The enqueue request a row stands for, or None (logged) for a row that is
    not one: only a hand edit makes such a row, and it must not block the rest."""
    try:
        stored = json.loads(row.fields)
        fields = {str(name): str(value) for name, value in stored.items()}
        job = from_fields({**fields, "status": "queued"})
        if job.id != row.id:
            raise InvalidJob(f"its fields name job {job.id!r}")
        return EnqueueRequest(job, fields["args"], fields["kwargs"], row.at_front)
    except (ValueError, AttributeError, KeyError, InvalidJob) as err:
        logger.error(
            "outbox row dropped, not a job; job lost id=%s queue=%s fields=%r: %s",
            row.id,
            row.queue,
            row.fields[:2000],
            err,
        )
        return None
