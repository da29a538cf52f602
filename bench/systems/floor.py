"""The floor: plain redis-py, one round trip per item (RPUSH in, BLPOP out).

Its latency row is what this machine needs to hand one item from one process to
another through Redis: no system can start a job sooner.
"""

import os
from collections.abc import Callable

import redis

from bench import probe

KEY = "floor"
PAYLOAD = '{"func":"bench.noop","args":[],"kwargs":{}}'
_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _client


def setup() -> None:
    client().ping()


def enqueue_one(n: int) -> None:
    rpush = client().rpush
    for _ in range(n):
        rpush(KEY, PAYLOAD)


def enqueue_bulk(n: int, chunk: int) -> None:
    for start in range(0, n, chunk):
        with client().pipeline(transaction=False) as pipe:
            for _ in range(min(chunk, n - start)):
                pipe.rpush(KEY, PAYLOAD)
            pipe.execute()


def enqueue_latency(sent_ns: int) -> None:
    client().rpush(KEY, f"L{sent_ns}")


def make_worker(variant: str) -> Callable[[], None]:
    def run() -> None:
        blpop = client().blpop
        while True:
            popped = blpop([KEY], timeout=1)
            if popped is None:
                continue
            # The latency floor: one RPUSH, one BLPOP wake-up in another process.
            if popped[1].startswith(b"L"):
                probe.record_start(int(popped[1][1:]))
            else:
                probe.job_done()

    return run
