"""The rows of the benchmark: which system, how it is configured, what it promises."""

from dataclasses import dataclass


@dataclass(frozen=True)
class System:
    key: str
    module: str  # bench.systems.<module>
    label: str
    guarantee: str
    concurrency: str
    variant: str = "default"
    enqueue: bool = True  # measure the enqueue scenarios for this row
    drain_jobs: int | None = None  # fewer jobs for a slow worker
    requires: str | None = None  # distribution that must be importable


#: Modules with an `enqueue_bulk` (Django's tasks API has none, nor do some peers).
BULK_MODULES = ("ours", "floor", "peer_rq")


def has_bulk(system: System) -> bool:
    """Whether the bulk enqueue scenario applies to `system`."""
    return system.enqueue and system.module in BULK_MODULES


RQ_GUARANTEE = (
    "at-most-once: a job whose worker dies is moved to the failed registry by "
    "the next maintenance pass, not re-run"
)

SYSTEMS = (
    System(
        "ours",
        "ours",
        "django-redisjobs",
        "at-least-once: claims are leases renewed by a heartbeat; any worker "
        "requeues expired ones",
        "runworker, 4 threads, adaptive prefetch up to 64 (defaults)",
    ),
    System(
        "ours-tasks",
        "ours_tasks",
        "django-redisjobs via django.tasks",
        "at-least-once, as django-redisjobs: the same jobs, queues and worker",
        "runworker, 4 threads (defaults); Task.enqueue() on RedisJobsBackend",
        requires="django.tasks",
    ),
    System(
        "ours-p16",
        "ours",
        "django-redisjobs --prefetch 16",
        "at-least-once, as above (prefetched jobs are leased and renewed too)",
        "runworker, 4 threads, prefetch at most 16 (the default before this run)",
        variant="c4p16",
        enqueue=False,
    ),
    System(
        "huey",
        "peer_huey",
        "Huey (RedisHuey)",
        "at-most-once: a job popped by a worker that crashes is lost",
        "consumer, 4 worker threads",
        requires="huey",
    ),
    System(
        "dramatiq",
        "peer_dramatiq",
        "Dramatiq (RedisBroker)",
        "at-least-once: acked after the job; unacked messages of a worker whose "
        "heartbeat stops are requeued",
        "Worker, 8 threads (default)",
        requires="dramatiq",
    ),
    System(
        "celery",
        "peer_celery",
        "Celery (Redis broker)",
        "at-most-once for the running job (acked before it runs, the default); "
        "unacked prefetched messages return after the 1 h visibility timeout",
        "threads pool, 4 threads, prefetch multiplier 4",
        requires="celery",
    ),
    System(
        "rq",
        "peer_rq",
        "RQ SimpleWorker",
        RQ_GUARANTEE,
        "SimpleWorker, one job at a time",
        variant="simple",
        requires="rq",
    ),
    System(
        "rq-fork",
        "peer_rq",
        "RQ Worker (fork)",
        RQ_GUARANTEE,
        "Worker (default), a fork per job",
        variant="fork",
        enqueue=False,
        drain_jobs=1000,
        requires="rq",
    ),
    System(
        "floor",
        "floor",
        "floor: redis-py, 1 round trip per item",
        "none: RPUSH to enqueue, BLPOP to take",
        "one thread",
    ),
)
