"""Dramatiq: `RedisBroker` with its default middleware, a Worker with 8 threads."""

import os
import signal
import threading
from collections.abc import Callable

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench import probe

THREADS = 8  # dramatiq's default worker_threads

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL"))
dramatiq.set_broker(broker)


@dramatiq.actor
def noop() -> None:
    probe.job_done()


@dramatiq.actor
def record_start(sent_ns: int) -> None:
    probe.record_start(sent_ns)


def setup() -> None:
    broker.client.ping()


def enqueue_one(n: int) -> None:
    send = noop.send
    for _ in range(n):
        send()


def enqueue_latency(sent_ns: int) -> None:
    record_start.send(sent_ns)


def make_worker(variant: str) -> Callable[[], None]:
    def run() -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        worker = dramatiq.Worker(broker, worker_threads=THREADS)
        worker.start()
        stop.wait()
        worker.stop()

    return run
