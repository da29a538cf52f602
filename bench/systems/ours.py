"""django-redisjobs: `@background` functions, `manage.py runworker`."""

import os
from collections.abc import Callable

import django

CONCURRENCY = 4  # runworker's default; prefetch is at most 16 x concurrency


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()


def enqueue_one(n: int) -> None:
    from bench.tasks import noop

    delay = noop.delay
    for _ in range(n):
        delay()


def enqueue_bulk(n: int, chunk: int) -> None:
    from bench.tasks import noop

    for start in range(0, n, chunk):
        noop.enqueue_many([((), {})] * min(chunk, n - start))


def enqueue_latency(sent_ns: int) -> None:
    from bench.tasks import record_start

    record_start.delay(sent_ns)


def make_worker(variant: str) -> Callable[[], None]:
    from django.core.management import call_command

    options = ["--concurrency", str(CONCURRENCY)]
    if variant != "default":
        # "c4p16": --concurrency 4 --prefetch 16
        threads, prefetch = variant.removeprefix("c").split("p")
        options = ["--concurrency", threads, "--prefetch", prefetch]
    # BENCH_OURS_ARGS tries other options, e.g. "--concurrency 8 --prefetch 64".
    options = os.environ.get("BENCH_OURS_ARGS", "").split() or options
    # -v 0: WARNING and up, like every other system here (no per-job log line).
    return lambda: call_command("runworker", *options, "-v", "0")
