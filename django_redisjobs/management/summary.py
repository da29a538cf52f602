"""What ``runworker`` serves by default, and what ``--burst`` says when it ends.

Jobs are counted by outcome and attempts apart (a job that failed twice and then
succeeded is one succeeded job and three attempts). After the counts, the summary
says what the burst left in Redis: jobs scheduled for later (retries and delayed
jobs) in the queues it served, and jobs waiting in queues it did not serve.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django_redisjobs.conf import Settings
from django_redisjobs.exceptions import RedisUnavailable
from django_redisjobs.job import JobStatus
from django_redisjobs.queue import JobState, JobStore
from django_redisjobs.registry import Registry

# Attempt outcomes that end a job, in the order the summary lists them.
_ENDINGS = (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.CANCELLED)


def default_queues(settings: Settings, functions: Registry) -> tuple[str, ...]:
    """``DEFAULT_QUEUE``, then every other queue that a background function or a
    cron entry names, by name."""
    named = {spec.queue for spec in functions.specs() if spec.queue}
    named |= {entry.queue for entry in settings.cron if entry.queue}
    named.discard(settings.default_queue)
    return (settings.default_queue, *sorted(named))


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 job``, ``2 jobs``: `count` with `noun` in the right number."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


@dataclass(frozen=True)
class LeftBehind:
    """Jobs a burst did not run: scheduled later in the queues it served, and
    waiting (ready or scheduled) in queues it did not serve, by queue name."""

    scheduled: Mapping[str, int]
    unserved: Mapping[str, int]


def left_behind(store: JobStore, served: Sequence[str]) -> LeftBehind | None:
    """Read what is left in Redis after a burst; None if Redis does not answer."""
    scheduled: dict[str, int] = {}
    unserved: dict[str, int] = {}
    try:
        for queue in sorted(set(store.known_queues()) | set(served)):
            counts = store.counts(queue)
            if queue in served:
                scheduled[queue] = counts[JobState.SCHEDULED]
            else:
                unserved[queue] = counts[JobState.QUEUED] + counts[JobState.SCHEDULED]
    except RedisUnavailable:
        return None
    return LeftBehind(
        {q: n for q, n in scheduled.items() if n},
        {q: n for q, n in unserved.items() if n},
    )


def _by_queue(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{queue} ({n})" for queue, n in counts.items())


def burst_summary(
    by_status: Mapping[str, int], served: Iterable[str], left: LeftBehind | None
) -> str:
    """The lines ``runworker --burst`` prints when it ends."""
    attempts = sum(by_status.values())
    ended = [(s.value, by_status.get(s.value, 0)) for s in _ENDINGS]
    jobs_ended = sum(n for _, n in ended)
    if attempts == 0:
        first = f"Burst done: no job was ready in {', '.join(served)}."
    else:
        detail = ", ".join(f"{n} {status}" for status, n in ended if n)
        first = (
            f"Burst done: {counted(jobs_ended, 'job')} ended"
            f"{f' ({detail})' if detail else ''}, in {counted(attempts, 'attempt')}."
        )
    lines = [first]
    if retried := by_status.get(JobStatus.RETRYING.value, 0):
        lines.append(f"{counted(retried, 'attempt')} failed and scheduled a retry.")
    if requeued := by_status.get("requeued", 0):
        lines.append(
            f"{counted(requeued, 'job')} handed back to the queue at the stop."
        )
    if left is not None and left.scheduled:
        total = sum(left.scheduled.values())
        lines.append(
            f"{counted(total, 'job')} scheduled for later (retries or delayed "
            f"jobs) in {_by_queue(left.scheduled)}: a worker without --burst "
            "runs them when due."
        )
    if left is not None and left.unserved:
        total = sum(left.unserved.values())
        lines.append(
            f"{counted(total, 'job')} {'waits' if total == 1 else 'wait'} in "
            f"queues this worker does not serve: {_by_queue(left.unserved)}; "
            "name them in --queues."
        )
    return "\n".join(lines)
