"""Median server time of each admin console page with N jobs in Redis.

    .venv/bin/python bench/admin_pages.py               # 1,000,000 jobs
    .venv/bin/python bench/admin_pages.py --smoke       # 2,000 jobs, for CI

The script starts its own redis-server (free loopback port, no persistence),
fills it with N jobs in two queues by pipelined bulk writes (40 % succeeded,
40 % queued, 10 % dead with a traceback and history, 5 % scheduled, 5 %
cancelled), registers a few workers, and requests every console page through
Django's test client as a superuser (testproject settings, DEBUG off). Each page
is requested `--rounds` times after two warm-up requests; the table gives the
median and the 90th percentile of the time from request to response, which is
the server's time: the test client has no network. The figure in docs/admin.md
comes from here.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench"
QUEUES = ("default", "emails")
CHUNK = 5_000
TRACEBACK = (
    'Traceback (most recent call last):\n  File "app/tasks.py", line 42, in send\n'
    '    raise ConnectionError("mail server refused")\nConnectionError: mail server '
    "refused\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit("redis-server is not on PATH; run scripts/setup.")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--dir",
         str(workdir), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    return process, port


def state_of(index: int) -> str:
    slot = index % 20
    if slot < 8:
        return "succeeded"
    if slot < 16:
        return "queued"
    if slot < 18:
        return "dead"
    return "scheduled" if slot == 18 else "cancelled"


def fill(client: redis.Redis, count: int, now_ms: int) -> float:
    """Write `count` jobs the way the scripts leave them; seconds it took."""
    from django_redisjobs import keys

    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for index in range(count):
        queue = QUEUES[index % len(QUEUES)]
        job_id = f"{now_ms - count + index:012x}{index:020x}"
        state = state_of(index)
        enqueued = now_ms - (count - index) * 10
        fields: dict[str, str | int] = {
            "id": job_id, "func": f"app.tasks.send_{index % 7}", "queue": queue,
            "args": json.dumps([index, "user@example.com"]),
            "kwargs": '{"template": "welcome"}', "max_attempts": 3,
            "enqueued_ms": enqueued, "status": state,
        }  # fmt: skip
        ended = enqueued + 50
        if state in ("succeeded", "dead", "cancelled"):
            fields.update(attempts=1, started_ms=enqueued + 5, finished_ms=ended,
                          worker="bench-worker-1")  # fmt: skip
        if state == "succeeded":
            fields.update(result='{"sent": true}', progress="1")
            pipe.zadd(keys.succeeded(PREFIX, queue), {job_id: ended})
        elif state == "dead":
            fields.update(
                error_class="builtins.ConnectionError",
                error_message="mail server refused",
                traceback=TRACEBACK,
                history=json.dumps(
                    [
                        {
                            "n": 1,
                            "w": "bench-worker-1",
                            "s": enqueued + 5,
                            "f": ended,
                            "o": "dead",
                            "e": "builtins.ConnectionError",
                            "m": "mail server refused",
                        }
                    ]  # fmt: skip
                ),
            )
            pipe.zadd(keys.dead(PREFIX, queue), {job_id: ended})
        elif state == "cancelled":
            pipe.zadd(keys.cancelled(PREFIX, queue), {job_id: ended})
        elif state == "scheduled":
            fields["run_at_ms"] = now_ms + index
            pipe.zadd(keys.scheduled(PREFIX, queue), {job_id: now_ms + index})
        else:
            pipe.rpush(keys.ready(PREFIX, queue), job_id)
        pipe.hset(keys.job(PREFIX, queue, job_id), mapping=fields)  # type: ignore[arg-type]
        if index % CHUNK == CHUNK - 1:
            pipe.execute()
    pipe.sadd(keys.queues(PREFIX), *QUEUES)
    for number in range(3):
        worker_id = f"bench-worker-{number}"
        pipe.zadd(keys.workers(PREFIX), {worker_id: now_ms + 3_600_000})
        pipe.hset(keys.worker(PREFIX, worker_id), mapping={
            "hostname": "bench", "pid": 100 + number, "queues": ",".join(QUEUES),
            "concurrency": 8, "started_ms": now_ms, "expires_ms": now_ms + 3_600_000,
            "succeeded": 1000, "held": 0,
        })  # fmt: skip
    pipe.execute()
    return time.perf_counter() - started


def setup_django(port: int, workdir: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="testproject.settings",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="testserver",
        DATABASE_PATH=str(workdir / "db.sqlite3"),
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        REDISJOBS_PREFIX=PREFIX,
    )
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def pages(count: int) -> list[tuple[str, str]]:
    from django.urls import reverse

    from django_redisjobs.queue import JobState, get_store

    def url(name: str, *args: str) -> str:
        return reverse(f"admin:django_redisjobs_jobconsole_{name}", args=args)

    store = get_store()
    (dead_id,) = store.list_ids("default", JobState.DEAD, 0, 1)
    per_page = 50
    queued = store.counts("default")[JobState.QUEUED]
    last_page = max((queued + per_page - 1) // per_page, 1)
    return [
        ("overview", url("changelist")),
        ("job list, queued, page 1", url("jobs", "default", "queued")),
        ("job list, queued, last page",
         url("jobs", "default", "queued") + f"?page={last_page}"),
        ("job list, succeeded, page 1", url("jobs", "default", "succeeded")),
        ("job list, dead, filtered by function",
         url("jobs", "default", "dead") + "?func=send_3"),
        ("job detail (dead)", url("job", "default", dead_id)),
        ("find by id", url("find") + f"?job_id={dead_id}"),
        ("workers", url("workers")),
        ("cron", url("cron")),
        ("live counts (JSON)", url("live_overview")),
        ("live job (JSON)", url("live_job", "default", dead_id)),
    ]  # fmt: skip


def measure(rounds: int, count: int) -> list[tuple[str, float, float]]:
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.create_superuser("bench", password=None)
    client = Client()
    client.force_login(user)
    found = []
    for label, path in pages(count):
        for _ in range(2):
            client.get(path)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code not in (200, 302):
                sys.exit(f"{label}: HTTP {response.status_code}")
        times.sort()
        found.append(
            (label, statistics.median(times), times[int(len(times) * 0.9) - 1])
        )
    return found


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--smoke", action="store_true", help="2,000 jobs, 5 rounds")
    options = parser.parse_args(argv)
    count, rounds = (2_000, 5) if options.smoke else (options.jobs, options.rounds)
    with tempfile.TemporaryDirectory(prefix="redisjobs-admin-bench-") as tmp:
        workdir = Path(tmp)
        process, port = start_redis(workdir)
        try:
            setup_django(port, workdir)
            client = redis.Redis(port=port)
            seconds = fill(client, count, int(time.time() * 1000))
            memory = client.info("memory")["used_memory_human"]
            print(f"{count:,} jobs written in {seconds:.1f} s; Redis uses {memory}.")
            print("\n| page | median ms | p90 ms |\n| --- | ---: | ---: |")
            for label, median, p90 in measure(rounds, count):
                print(f"| {label} | {median:.1f} | {p90:.1f} |")
        finally:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
