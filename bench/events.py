"""Events in the benchmark: publish one by one, and the relay's rate (events to
subscriber jobs, 3 subscribers), beside `.delay()` one by one in the same run.

    .venv/bin/python bench/events.py            # 20,000 events, 3 rounds
    .venv/bin/python bench/events.py --smoke    # a few hundred, one round

Starts its own redis-server on a free loopback port (persistence off). Each
round: N `.delay()` calls (the enqueue row of bench/run, for scale), N
`publish()` calls, then one `EventRelay.drain()` turning N events into 3N jobs.
Prints per round and the median: publishes/s, enqueues/s, and events/s and
jobs/s through the relay, with publish/enqueue as a ratio.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    options = parser.parse_args()
    n, repeat = (300, 1) if options.smoke else (options.events, options.repeat)

    port = _free_port()
    directory = tempfile.mkdtemp(prefix="bench-events-")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        return _run(port, n, repeat)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _run(port: int, n: int, repeat: int) -> int:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    import django
    import redis

    django.setup()
    from bench import event_jobs, tasks
    from django_redisjobs.event_relay import EventRelay
    from django_redisjobs.events import publish, subscriptions

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    subs = [s for s in subscriptions() if s.event == "bench.signup"]
    assert len(subs) == 3 and event_jobs.welcome.spec.name.startswith("bench.")
    rows = []
    for round_no in range(1, repeat + 1):
        client.flushdb()
        relay = EventRelay(subs, "bench-relay")
        relay.prepare()
        started = time.perf_counter()
        for _ in range(n):
            tasks.noop.delay()
        enqueue_s = time.perf_counter() - started
        started = time.perf_counter()
        for number in range(n):
            publish("bench.signup", {"user_id": number})
        publish_s = time.perf_counter() - started
        started = time.perf_counter()
        relayed = relay.drain()
        relay_s = time.perf_counter() - started
        assert relayed == 3 * n and relay.enqueued == 3 * n, (relayed, relay.enqueued)
        row = (n / enqueue_s, n / publish_s, n / relay_s, 3 * n / relay_s)
        rows.append(row)
        print(
            f"round {round_no}: delay {row[0]:,.0f}/s, publish {row[1]:,.0f}/s "
            f"({row[1] / row[0]:.2f}x delay), relay {row[2]:,.0f} events/s "
            f"= {row[3]:,.0f} jobs/s"
        )
    median = [statistics.median(column) for column in zip(*rows, strict=True)]
    print(
        f"median of {repeat}, {n:,} events: delay {median[0]:,.0f}/s, publish "
        f"{median[1]:,.0f}/s ({median[1] / median[0]:.2f}x delay), relay "
        f"{median[2]:,.0f} events/s = {median[3]:,.0f} jobs/s (3 subscribers)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
