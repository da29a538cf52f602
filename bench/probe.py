"""What the benchmark jobs report, kept in a second redis-server ("meta").

Every system's no-op job calls `job_done()`, which only appends a timestamp to a
list in its process; a daemon thread copies the count and the first and last
times to the meta server every few ms. The measured server's commandstats and CPU
therefore see nothing of the bookkeeping, and each system pays the same few
hundred nanoseconds per job for it.
"""

import os
import threading
import time

import redis

DONE_KEY = "bench:done"  # hash: pid -> "count first_s last_s"
TIMES_KEY = "bench:times"  # list of completion times, for forking workers
LATENCY_KEY = "bench:latency"  # list of enqueue->start delays in ns
FLUSH_EVERY_S = 0.005
# A forking worker's child exits right after its job, before any flush.
SYNC = bool(os.environ.get("BENCH_SYNC_COUNT"))

_times: list[float] = []
_lock = threading.Lock()
_owner_pid = 0
_client: redis.Redis | None = None
_client_pid = 0


def meta() -> redis.Redis:
    """A client of the meta server, one per process (forked children make their own)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(os.environ["BENCH_META_URL"])
        _client_pid = os.getpid()
    return _client


def job_done() -> None:
    """Count one finished job of this process."""
    if SYNC:
        meta().rpush(TIMES_KEY, time.time())
        return
    _times.append(time.time())
    if _owner_pid != os.getpid():
        _start_flusher()


def record_start(sent_ns: int) -> None:
    """Latency probe: how long since the producer enqueued this job."""
    meta().rpush(LATENCY_KEY, time.time_ns() - sent_ns)


def _start_flusher() -> None:
    global _owner_pid
    with _lock:
        if _owner_pid == os.getpid():
            return
        _owner_pid = os.getpid()
        thread = threading.Thread(target=_flush_loop, name="bench-probe", daemon=True)
        thread.start()


def _flush_loop() -> None:
    client = meta()
    pid = str(os.getpid())
    written = 0
    while True:
        time.sleep(FLUSH_EVERY_S)
        count = len(_times)
        if count != written:
            client.hset(DONE_KEY, pid, f"{count} {_times[0]!r} {_times[count - 1]!r}")
            written = count


def progress(client: redis.Redis) -> tuple[int, float, float]:
    """(jobs done, first start s, last finish s) over every worker process."""
    count, first, last = 0, float("inf"), 0.0
    for value in client.hvals(DONE_KEY):
        n, a, b = value.split()
        count += int(n)
        first, last = min(first, float(a)), max(last, float(b))
    times = [float(t) for t in client.lrange(TIMES_KEY, 0, -1)]
    if times:
        count += len(times)
        first, last = min(first, min(times)), max(last, max(times))
    return count, first, last
