"""Soak run: N jobs through `runworker` processes while a chaos loop kills them.

    .venv/bin/python bench/soak.py              # 50,000 jobs, 4 workers
    .venv/bin/python bench/soak.py --smoke      # a few hundred jobs, for CI

The script starts its own redis-server (free loopback port, AOF on, appendfsync
always), 4 ``manage.py runworker`` processes with ``bench.soak_settings``, and
enqueues jobs at a steady rate. Every few seconds it ``kill -9``s a random worker
and starts a new one in its place; once, halfway, it ``kill -9``s Redis and
restarts it. Each job counts its executions in a Redis hash. At the end it prints
how many jobs were enqueued, completed and lost (must be 0), which ran more than
once and why, the completion delay, and how long each kill took to recover.
Exit status 1 when a job was lost.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "default"


@dataclass(frozen=True)
class Options:
    jobs: int
    workers: int
    concurrency: int
    rate: float
    work_ms: int
    lease_s: float
    kill_every_s: float
    restart_redis_at: float
    redis_down_s: float
    appendfsync: str
    timeout_s: float
    seed: int
    json_path: str | None


def parse(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="per worker")
    parser.add_argument("--rate", type=float, default=1000.0, help="jobs/s enqueued")
    parser.add_argument("--work-ms", type=int, default=10, help="each job's work")
    parser.add_argument("--lease", type=float, default=5.0, help="LEASE_S")
    parser.add_argument("--kill-every", type=float, default=3.0, help="mean seconds")
    parser.add_argument(
        "--restart-redis-at", type=float, default=0.5, help="fraction enqueued"
    )
    parser.add_argument(
        "--redis-down", type=float, default=3.0, help="seconds Redis stays down"
    )
    parser.add_argument("--appendfsync", default="always")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument(
        "--smoke", action="store_true", help="300 jobs, 1 s leases, ~20 s"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.rate, args.lease, args.kill_every = 300, 40.0, 1.0, 2.0
        args.work_ms = 200  # long enough that kills land mid-job
        args.redis_down = 1.0
        args.timeout = min(args.timeout, 120.0)
    return Options(
        jobs=args.jobs,
        workers=args.workers,
        concurrency=args.concurrency,
        rate=args.rate,
        work_ms=args.work_ms,
        lease_s=args.lease,
        kill_every_s=args.kill_every,
        restart_redis_at=args.restart_redis_at,
        redis_down_s=args.redis_down,
        appendfsync=args.appendfsync,
        timeout_s=args.timeout,
        seed=args.seed if args.seed is not None else random.randrange(2**32),  # noqa: S311
        json_path=args.json_path,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """Our own redis-server with AOF on; `crash_and_restart` keeps port and dir."""

    def __init__(self, workdir: Path, appendfsync: str) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            sys.exit("redis-server is not on PATH; run scripts/setup --with-test-deps.")
        self.port = free_port()
        self.dir = workdir / "redis"
        self.dir.mkdir()
        self.command = [
            executable,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")),
            *("--save", "", "--appendonly", "yes", "--appendfsync", appendfsync),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> float:
        """Start and wait for PING; return the seconds it took."""
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        probe = redis.Redis(port=self.port, socket_connect_timeout=1)
        while True:
            try:
                if probe.ping():
                    break
            except redis.ConnectionError:  # refused, or loading the AOF
                time.sleep(0.01)
        probe.close()
        return time.monotonic() - started

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class WorkerSlot:
    """One of the worker processes; a killed one is replaced under a new name."""

    def __init__(self, index: int, options: Options, env: dict[str, str]) -> None:
        self.index, self.options, self.env = index, options, env
        self.generation = 0
        self.name = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(self, log_dir: Path) -> None:
        self.generation += 1
        self.name = f"soak-w{self.index}-{self.generation}"
        log = log_dir / f"{self.name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "manage.py", "runworker"),
                    *("--concurrency", str(self.options.concurrency)),
                    *("--name", self.name, "--grace", "10", "-v", "1"),
                ],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@dataclass
class KillRecord:
    """One kill -9 and how long its jobs took to come back."""

    worker: str
    at_s: float  # since the run started
    held: list[str]
    requeued_after_s: float | None = None  # every held job taken back or ended
    completed_after_s: float | None = None  # every held job succeeded


@dataclass
class Run:
    """What happened during the run, for the report."""

    started: float = field(default_factory=time.monotonic)
    ids: list[str] = field(default_factory=list)  # index = job number
    enqueue_errors: int = 0
    kills: list[KillRecord] = field(default_factory=list)
    redis_restart: dict[str, float] = field(default_factory=dict)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Enqueuer(threading.Thread):
    """Enqueues `options.jobs` jobs at `options.rate` per second, in small batches."""

    def __init__(self, options: Options, run: Run) -> None:
        super().__init__(name="enqueuer", daemon=True)
        self.options, self.run_state = options, run
        self.allowed = threading.Event()
        self.allowed.set()
        self.paused = threading.Event()  # set while waiting on `allowed`

    def run(self) -> None:
        from bench.soak_jobs import soak_job
        from django_redisjobs import RedisUnavailable

        batch_s = 0.05
        per_batch = max(1, round(self.options.rate * batch_s))
        next_at = time.monotonic()
        ids = self.run_state.ids
        while len(ids) < self.options.jobs:
            if not self.allowed.is_set():
                self.paused.set()
                self.allowed.wait()
                self.paused.clear()
            count = min(per_batch, self.options.jobs - len(ids))
            calls = [((len(ids) + k, self.options.work_ms), {}) for k in range(count)]
            try:
                handles = soak_job.enqueue_many(calls)
            except RedisUnavailable:
                self.run_state.enqueue_errors += 1
                time.sleep(0.5)
                continue
            ids.extend(h.id for h in handles)
            next_at += batch_s
            time.sleep(max(next_at - time.monotonic(), 0))
        self.paused.set()


def held_by(client: redis.Redis, prefix: str, worker: str) -> list[str]:
    """Ids of the jobs leased to `worker`: claimed, running, or ended with the
    outcome not yet written."""
    from django_redisjobs import keys

    ids = client.zrange(keys.active(prefix, QUEUE), 0, -1)
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(keys.job(prefix, QUEUE, job_id), "worker")
        holders = pipe.execute()
    return [job_id for job_id, h in zip(ids, holders, strict=True) if h == worker]


def update_kill(client: redis.Redis, prefix: str, kill: KillRecord, now: float) -> None:
    from django_redisjobs import keys

    with client.pipeline(transaction=False) as pipe:
        for job_id in kill.held:
            pipe.hmget(keys.job(prefix, QUEUE, job_id), "status", "worker")
        rows = pipe.execute()
    ended = {"succeeded", "dead"}
    if kill.requeued_after_s is None and all(
        status in ended or holder != kill.worker for status, holder in rows
    ):
        kill.requeued_after_s = now - kill.at_s
    if all(status in ended for status, _ in rows):
        kill.completed_after_s = now - kill.at_s


class Chaos:
    """The main loop: kill -9 workers, restart Redis once, track recovery."""

    def __init__(
        self,
        options: Options,
        run: Run,
        slots: list[WorkerSlot],
        server: RedisProcess,
        enqueuer: Enqueuer,
        log_dir: Path,
    ) -> None:
        self.options, self.run, self.slots = options, run, slots
        self.server, self.enqueuer, self.log_dir = server, enqueuer, log_dir
        self.rng = random.Random(options.seed)  # noqa: S311 - a chaos schedule
        self.client = redis.Redis.from_url(server.url, decode_responses=True)
        self.prefix = os.environ["SOAK_PREFIX"]
        self.next_kill_s = self._interval()
        self._back: tuple[float, int] | None = None  # Redis back at (s, ended)

    def _interval(self) -> float:
        return self.options.kill_every_s * self.rng.uniform(0.5, 1.5)

    def ended(self) -> int:
        from django_redisjobs import keys

        with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.succeeded(self.prefix, QUEUE))
            pipe.zcard(keys.dead(self.prefix, QUEUE))
            succeeded, dead = pipe.execute()
        return int(succeeded) + int(dead)

    def loop(self) -> None:
        n = self.options.jobs
        deadline = self.run.started + self.options.timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                self._step(n)
                if len(self.run.ids) >= n and self.ended() >= n:
                    return
            except redis.ConnectionError:
                continue
        print(f"timed out after {self.options.timeout_s:.0f} s", file=sys.stderr)

    def _step(self, n: int) -> None:
        now = self.run.elapsed()
        if (
            not self.run.redis_restart
            and len(self.run.ids) >= n * self.options.restart_redis_at
        ):
            self._restart_redis()
        # Kills stop once every job is enqueued and 95% have ended, so the run's
        # tail measures recovery rather than waiting on a fresh kill.
        chaos_on = len(self.run.ids) < n or self.ended() < 0.95 * n
        if chaos_on and now >= self.next_kill_s:
            self._kill_one(now)
            self.next_kill_s = now + self._interval()
        for kill in self.run.kills:
            if kill.completed_after_s is None:
                update_kill(self.client, self.prefix, kill, now)
        if self._back is not None and self.ended() > self._back[1]:
            resumed = self.run.elapsed() - self._back[0]
            self.run.redis_restart["resumed_after_s"] = resumed
            self._back = None

    def _kill_one(self, now: float) -> None:
        slot = self.rng.choice(self.slots)
        name = slot.name
        slot.kill()
        try:
            # Read after the kill: what the dead worker leaves behind, no more.
            held = held_by(self.client, self.prefix, name)
        finally:
            slot.start(self.log_dir)
        self.run.kills.append(KillRecord(name, now, held))

    def _restart_redis(self) -> None:
        self.enqueuer.allowed.clear()
        self.enqueuer.paused.wait()
        at = self.run.elapsed()
        self.server.kill()
        time.sleep(self.options.redis_down_s)
        start_s = self.server.start()
        self.run.redis_restart = {"at_s": at, "down_s": self.run.elapsed() - at}
        self.run.redis_restart["aof_load_s"] = start_s
        self._back = (self.run.elapsed(), self.ended())
        self.enqueuer.allowed.set()


def wait_for_workers(url: str, prefix: str, count: int) -> None:
    """Start the clock once every worker has registered (Django takes a while)."""
    from django_redisjobs import keys

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 60
    while client.zcard(keys.workers(prefix)) < count:
        if time.monotonic() > deadline:
            sys.exit("the workers did not start within 60 s; see their logs.")
        time.sleep(0.05)
    client.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def collect(run: Run, client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Read every job's final state and execution count; build the report."""
    from bench.soak_jobs import runs_key
    from django_redisjobs.queue import get_store

    store = get_store()
    runs = {int(k): int(v) for k, v in client.hgetall(runs_key(prefix)).items()}
    delays_ms: list[float] = []
    statuses: dict[str, int] = {}
    twice = {"worker killed mid-job, re-run after lease recovery": 0, "other": 0}
    other_ids: list[str] = []
    lost_attempts = 0
    for start in range(0, len(run.ids), 2000):
        chunk = run.ids[start : start + 2000]
        for offset, job in enumerate(store.get_many(chunk, QUEUE)):
            n = start + offset
            status = job.status.value if job else "missing"
            statuses[status] = statuses.get(status, 0) + 1
            if job is None:
                continue
            lost_attempts += job.lost
            if job.finished_at and job.enqueued_at:
                delta = job.finished_at - job.enqueued_at
                delays_ms.append(delta.total_seconds() * 1000)
            if runs.get(n, 0) > 1:
                if job.lost:
                    twice["worker killed mid-job, re-run after lease recovery"] += 1
                else:
                    twice["other"] += 1
                    other_ids.append(job.id)
    completed = statuses.get("succeeded", 0)
    return {
        "enqueued": len(run.ids),
        "completed": completed,
        "lost": len(run.ids) - completed,
        "statuses": statuses,
        "executions": sum(runs.values()),
        "never_executed": sum(1 for n in range(len(run.ids)) if runs.get(n, 0) == 0),
        "executed_more_than_once": sum(twice.values()),
        "executed_more_than_once_by_reason": twice,
        "other_repeat_ids": other_ids[:20],
        "lost_attempts": lost_attempts,
        "delay_ms": {
            "p50": percentile(delays_ms, 0.50),
            "p99": percentile(delays_ms, 0.99),
            "max": max(delays_ms, default=float("nan")),
        },
    }


def recovery_summary(kills: list[KillRecord]) -> dict[str, Any]:
    requeued = [
        k.requeued_after_s for k in kills if k.held and k.requeued_after_s is not None
    ]
    return {
        "kills": len(kills),
        "kills_holding_jobs": sum(1 for k in kills if k.held),
        "jobs_held_at_kill": sum(len(k.held) for k in kills),
        "requeue_s": {
            "min": min(requeued, default=float("nan")),
            "median": statistics.median(requeued) if requeued else float("nan"),
            "max": max(requeued, default=float("nan")),
        },
        "unrecovered_kills": sum(
            1 for k in kills if k.held and k.completed_after_s is None
        ),
    }


def print_report(report: dict[str, Any], kills: list[KillRecord]) -> None:
    opts, res = report["options"], report["result"]
    print(f"\nsoak run: {opts['jobs']} jobs, {opts['workers']} workers x ", end="")
    print(
        f"{opts['concurrency']} threads, lease {opts['lease_s']} s, seed {opts['seed']}"
    )
    print(f"duration           {report['duration_s']:.1f} s")
    print(f"enqueued           {res['enqueued']}")
    print(f"completed          {res['completed']}")
    print(f"lost               {res['lost']}   (statuses: {res['statuses']})")
    print(
        f"executions         {res['executions']} (lost attempts {res['lost_attempts']})"
    )
    print(f"executed > once    {res['executed_more_than_once']}")
    for reason, count in res["executed_more_than_once_by_reason"].items():
        print(f"    {count:6d}  {reason}")
    delay = res["delay_ms"]
    print(
        f"completion delay   p50 {delay['p50']:.0f} ms, p99 {delay['p99']:.0f} ms, ",
        end="",
    )
    print(f"max {delay['max']:.0f} ms (enqueue to recorded success)")
    restart = report["redis_restart"]
    if restart:
        print(
            f"redis restart      kill -9 at {restart['at_s']:.1f} s, back after "
            f"{restart['down_s']:.2f} s (AOF load {restart['aof_load_s']:.2f} s); "
            f"completions resumed {restart.get('resumed_after_s', float('nan')):.2f} s "
            "after it answered"
        )
    rec = report["recovery"]
    print(
        f"kills              {rec['kills']} ({rec['kills_holding_jobs']} holding ",
        end="",
    )
    print(f"{rec['jobs_held_at_kill']} jobs), unrecovered {rec['unrecovered_kills']}")
    req = rec["requeue_s"]
    print(
        f"recovery per kill  min {req['min']:.1f} s, median {req['median']:.1f} s, ",
        end="",
    )
    print(f"max {req['max']:.1f} s (kill to every held job taken back or ended)")
    for k in kills:
        requeued = "-" if k.requeued_after_s is None else f"{k.requeued_after_s:.1f}"
        completed = "-" if k.completed_after_s is None else f"{k.completed_after_s:.1f}"
        print(
            f"    {k.at_s:7.1f} s  {k.worker:<14} held {len(k.held):3d}  "
            f"requeued {requeued:>5} s  completed {completed:>5} s"
        )


def main(argv: Sequence[str]) -> int:
    options = parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="redisjobs-soak-"))
    log_dir = workdir / "logs"
    log_dir.mkdir()
    server = RedisProcess(workdir, options.appendfsync)
    server.start()
    prefix = f"soak{os.getpid()}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.soak_settings",
        SOAK_REDIS_URL=server.url,
        SOAK_PREFIX=prefix,
        SOAK_LEASE_S=str(options.lease_s),
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    slots = [WorkerSlot(i, options, dict(os.environ)) for i in range(options.workers)]
    for slot in slots:
        slot.start(log_dir)
    wait_for_workers(server.url, prefix, options.workers)
    run = Run()
    enqueuer = Enqueuer(options, run)
    enqueuer.start()
    try:
        Chaos(options, run, slots, server, enqueuer, log_dir).loop()
        duration = run.elapsed()
    finally:
        exits = [slot.stop() for slot in slots]
    client = redis.Redis.from_url(server.url, decode_responses=True)
    report = {
        "options": asdict(options),
        "duration_s": duration,
        "result": collect(run, client, prefix),
        "redis_restart": run.redis_restart,
        "recovery": recovery_summary(run.kills),
        "enqueue_errors": run.enqueue_errors,
        "worker_exit_codes": exits,
        "logs": str(log_dir),
    }
    server.kill()
    shutil.rmtree(server.dir, ignore_errors=True)  # the AOF; the logs stay
    print_report(report, run.kills)
    print(f"worker logs        {log_dir}")
    if options.json_path:
        Path(options.json_path).write_text(json.dumps(report, indent=2))
    return 1 if report["result"]["lost"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
