"""Huey: `RedisHuey` (blocking BRPOP), the consumer with 4 worker threads."""

import os
from collections.abc import Callable

from huey import RedisHuey

from bench import probe

WORKERS = 4

huey = RedisHuey("bench", url=os.environ.get("BENCH_REDIS_URL"))


@huey.task()
def noop() -> None:
    probe.job_done()


@huey.task()
def record_start(sent_ns: int) -> None:
    probe.record_start(sent_ns)


def setup() -> None:
    huey.storage.conn.ping()


def enqueue_one(n: int) -> None:
    for _ in range(n):
        noop()


def enqueue_latency(sent_ns: int) -> None:
    record_start(sent_ns)


def make_worker(variant: str) -> Callable[[], None]:
    consumer = huey.create_consumer(workers=WORKERS, worker_type="thread")
    return consumer.run
