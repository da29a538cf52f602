"""One module per measured system, each with the same functions.

``setup()`` prepares the process; ``enqueue_one(n)`` enqueues n no-op jobs one call
at a time; ``enqueue_bulk(n, chunk)`` (only where the system has a bulk API) in
calls of ``chunk`` jobs; ``enqueue_latency(sent_ns)`` enqueues one latency probe;
``make_worker(variant)`` builds a worker and returns the callable that runs it.
The URL of the measured server comes from ``BENCH_REDIS_URL``.
"""
