"""RQ: `Queue.enqueue`, `Queue.enqueue_many`; SimpleWorker or the forking Worker."""

import os
from collections.abc import Callable

from redis import Redis
from rq import Queue, SimpleWorker, Worker

from bench import probe

_queue: Queue | None = None


def noop() -> None:
    probe.job_done()


def record_start(sent_ns: int) -> None:
    probe.record_start(sent_ns)


def queue() -> Queue:
    global _queue
    if _queue is None:
        _queue = Queue(
            "default", connection=Redis.from_url(os.environ["BENCH_REDIS_URL"])
        )
    return _queue


def setup() -> None:
    queue().connection.ping()


def enqueue_one(n: int) -> None:
    enqueue = queue().enqueue
    for _ in range(n):
        enqueue(noop)


def enqueue_bulk(n: int, chunk: int) -> None:
    q = queue()
    for start in range(0, n, chunk):
        q.enqueue_many([Queue.prepare_data(noop) for _ in range(min(chunk, n - start))])


def enqueue_latency(sent_ns: int) -> None:
    queue().enqueue(record_start, sent_ns)


def make_worker(variant: str) -> Callable[[], None]:
    q = queue()
    worker_class = Worker if variant == "fork" else SimpleWorker
    worker = worker_class([q], connection=q.connection)
    return lambda: worker.work(logging_level="WARNING")
