"""Celery: Redis broker, no result backend, the threads pool with 4 threads."""

import os
from collections.abc import Callable

from celery import Celery

from bench import probe

CONCURRENCY = 4

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL"))
app.conf.update(
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop() -> None:
    probe.job_done()


@app.task
def record_start(sent_ns: int) -> None:
    probe.record_start(sent_ns)


def setup() -> None:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)


def enqueue_one(n: int) -> None:
    delay = noop.delay
    for _ in range(n):
        delay()


def enqueue_latency(sent_ns: int) -> None:
    record_start.delay(sent_ns)


def make_worker(variant: str) -> Callable[[], None]:
    argv = [
        "worker",
        "--pool=threads",
        f"--concurrency={CONCURRENCY}",
        "--loglevel=WARNING",
        # The usual advice with a Redis broker: no worker-to-worker chatter.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    return lambda: app.worker_main(argv)
