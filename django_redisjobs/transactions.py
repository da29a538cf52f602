"""Commit-aware enqueue: ids now, the write to Redis on commit, nothing on rollback.

Django's own Tasks framework enqueues at once even inside a transaction; deferring
to `transaction.on_commit` is this app's extension, so a worker never picks up a job
whose database rows are not visible yet (or never will be). A pending handle
cancelled before the commit is not written at all. A unique job whose key another
job holds when the write happens makes its handle point at that job instead.
"""

import dataclasses
import logging
from collections.abc import Sequence
from functools import partial

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from . import outbox, signals
from .conf import Settings, get_settings
from .exceptions import RedisUnavailable
from .execution import run_inline, send_signal
from .handle import JobHandle
from .job import Job, JobStatus, now_epoch_ms
from .queue import EnqueueRequest, JobStore, Placed, get_store
from .registry import FunctionSpec

logger = logging.getLogger(__name__)


def submit(
    spec: FunctionSpec,
    requests: Sequence[EnqueueRequest],
    *,
    on_commit: bool | None = None,
    using: str | None = None,
) -> list[JobHandle]:
    """Store `requests` now, or when the open transaction on `using` commits.

    Returns one handle per request. Outside a transaction a Redis failure raises
    `RedisUnavailable`; after a commit any failure is logged at ERROR with each
    job's id, function and arguments, since the caller has already moved on, and
    the commit's other callbacks still run. Arguments are checked before this is
    called (`SerializationError` at `.delay()`), so a bad argument never reaches
    the commit.
    """
    settings = get_settings()
    alias = using or DEFAULT_DB_ALIAS
    defer = settings.on_commit if on_commit is None else on_commit
    in_atomic = defer and connections[alias].in_atomic_block
    if in_atomic:
        handles = [
            JobHandle(
                dataclasses.replace(r.job, status=JobStatus.PENDING), in_redis=False
            )
            for r in requests
        ]
    else:
        handles = [JobHandle(r.job, in_redis=False) for r in requests]
    if in_atomic and settings.outbox and not settings.eager:
        # The rows commit or roll back with the caller's; see outbox.py.
        outbox.check_database(alias, settings.outbox_databases)
        outbox.put(requests, alias)
        transaction.on_commit(
            partial(_deliver_own, requests, handles, alias), using=alias
        )
        return handles
    write = partial(_write, spec, requests, handles, settings)
    if in_atomic:
        # Django runs this after the outermost commit, and drops it when the
        # transaction or the savepoint that registered it rolls back.
        transaction.on_commit(partial(_write_logged, write, requests), using=alias)
    else:
        write()
    return handles


def _write(
    spec: FunctionSpec,
    requests: Sequence[EnqueueRequest],
    handles: Sequence[JobHandle],
    settings: Settings,
) -> None:
    # A handle cancelled while pending (see JobHandle.cancel) is left out.
    live = [
        (request, handle)
        for request, handle in zip(requests, handles, strict=True)
        if handle.status is not JobStatus.CANCELLED
    ]
    if settings.eager:
        # Uniqueness needs a job that waits; an eager job never does.
        for request, handle in live:
            send_signal(signals.job_enqueued, request.job)
            handle.mark_local(run_inline(spec, request.job, settings).job_after())
        return
    store = get_store()
    placed = store.enqueue_detailed([request for request, _ in live], now_epoch_ms())
    _mark_stored(store, live, placed)


def _mark_stored(
    store: JobStore,
    live: Sequence[tuple[EnqueueRequest, JobHandle]],
    placed: Sequence[Placed],
) -> None:
    """Point each handle at the job that stands for its request, and announce
    the jobs stored for it."""
    holders = _holders(store, live, placed)
    for (request, handle), where in zip(live, placed, strict=True):
        if where.job_id == request.job.id:
            job = _as_stored(request.job, where)
            handle.mark_enqueued(job)
            send_signal(signals.job_enqueued, job)
        else:
            handle.mark_enqueued(holders[where.job_id])


def _as_stored(job: Job, where: Placed) -> Job:
    """`job` with the status the enqueue script gave it: a job made to wait
    until a time that passed before its transaction committed is queued, not
    scheduled (the script decides with the clock of the write)."""
    if not where.stored:
        return job  # a replayed id: the stored job is the first enqueue's
    status = JobStatus.SCHEDULED if where.scheduled else JobStatus.QUEUED
    return job if job.status is status else dataclasses.replace(job, status=status)


def _holders(
    store: JobStore,
    live: Sequence[tuple[EnqueueRequest, JobHandle]],
    placed: Sequence[Placed],
) -> dict[str, Job]:
    """The jobs that hold the unique keys of requests that were not stored."""
    holders: dict[str, Job] = {}
    for (request, _), where in zip(live, placed, strict=True):
        if where.job_id == request.job.id or where.job_id in holders:
            continue
        try:
            (found,) = store.get_many([where.job_id], request.job.queue)
        except RedisUnavailable:
            found = None
        # Gone (or unreadable) already: the handle still names the right job.
        holders[where.job_id] = found or dataclasses.replace(
            request.job, id=where.job_id
        )
    return holders


def _deliver_own(
    requests: Sequence[EnqueueRequest], handles: Sequence[JobHandle], using: str
) -> None:
    """On commit, with the outbox on: move this call's rows to Redis at once, so
    the job waits for no relay. Whatever fails is logged, never raised (other
    on-commit callbacks follow this one): the rows stay, the relay delivers them,
    and the handles, still pending, find their jobs in Redis from then on."""
    live = [
        (request, handle)
        for request, handle in zip(requests, handles, strict=True)
        if handle.status is not JobStatus.CANCELLED
    ]
    try:
        outbox.discard(
            [h.id for h in handles if h.status is JobStatus.CANCELLED], using
        )
        delivery = outbox.deliver(
            using, ids=[r.job.id for r, _ in live], limit=len(live)
        )
        done = [(r, h) for r, h in live if r.job.id in delivery.placed]
        if done:
            placed = [delivery.placed[r.job.id][1] for r, _ in done]
            _mark_stored(get_store(), done, placed)
    except Exception as err:
        logger.warning(
            "enqueue after commit left to the outbox relay: %d job(s) wait in "
            "the outbox of database %r (%s: %s)",
            len(live),
            using,
            type(err).__name__,
            err,
        )
    for _, handle in live:
        if handle.status is JobStatus.PENDING:
            handle.mark_committed()


def _write_logged(write: partial[None], requests: Sequence[EnqueueRequest]) -> None:
    """The on-commit write: it logs whatever goes wrong instead of raising, since
    the caller has moved on and an exception here would skip the on-commit
    callbacks (other jobs' writes among them) that Django runs after this one."""
    try:
        write()
    except Exception:
        for request in requests:
            logger.exception(
                "enqueue after commit failed; job lost unless replayed "
                "job id=%s func=%s queue=%s args=%s kwargs=%s",
                request.job.id,
                request.job.func,
                request.job.queue,
                request.args_json,
                request.kwargs_json,
            )
