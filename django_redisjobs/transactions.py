"""Commit-aware enqueue: ids now, the write to Redis on commit, nothing on rollback.

Django's own Tasks framework enqueues at once even inside a transaction; deferring
to `transaction.on_commit` is this app's extension, so a worker never picks up a job
whose database rows are not visible yet (or never will be).
"""

import dataclasses
import logging
from collections.abc import Sequence
from functools import partial

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from . import signals
from .conf import Settings, get_settings
from .exceptions import RedisUnavailable
from .execution import run_inline, send_signal
from .handle import JobHandle
from .job import JobStatus, now_epoch_ms
from .queue import EnqueueRequest, get_store
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
    `RedisUnavailable`; after a commit it is logged at ERROR with each job's id,
    function and arguments, since the caller has already moved on.
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
    if settings.eager:
        for request, handle in zip(requests, handles, strict=True):
            send_signal(signals.job_enqueued, request.job)
            handle.mark_local(run_inline(spec, request.job, settings).job_after())
        return
    get_store().enqueue(requests, now_epoch_ms())
    for request, handle in zip(requests, handles, strict=True):
        handle.mark_enqueued(request.job)
        send_signal(signals.job_enqueued, request.job)


def _write_logged(write: partial[None], requests: Sequence[EnqueueRequest]) -> None:
    try:
        write()
    except RedisUnavailable:
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
