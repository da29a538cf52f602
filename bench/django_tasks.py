"""The benchmark's django.tasks functions, on RedisJobsBackend (Django 6.0+).

The same bodies as `bench.tasks`, so the `ours-tasks` row differs from `ours`
only by the API: ``Task.enqueue()`` through the backend instead of ``.delay()``.
"""

from django.tasks import task

from . import probe


@task()
def noop() -> None:
    probe.job_done()


@task()
def record_start(sent_ns: int) -> None:
    probe.record_start(sent_ns)
