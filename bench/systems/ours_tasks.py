"""django-redisjobs through django.tasks: ``@task`` functions on RedisJobsBackend,
enqueued one by one with ``Task.enqueue()`` and run by the same ``runworker``."""

from collections.abc import Callable

from bench.systems import ours

setup = ours.setup


def enqueue_one(n: int) -> None:
    from bench.django_tasks import noop

    enqueue = noop.enqueue
    for _ in range(n):
        enqueue()


def enqueue_latency(sent_ns: int) -> None:
    from bench.django_tasks import record_start

    record_start.enqueue(sent_ns)


def make_worker(variant: str) -> Callable[[], None]:
    # runworker autodiscovers "tasks" modules; importing this one registers its
    # tasks with the worker, as a project's AUTODISCOVER_MODULES would.
    from bench import django_tasks  # noqa: F401

    return ours.make_worker(variant)
