"""Run the benchmark: every installed system, one after another, on one redis-server.

    python -m bench.run [--smoke] [--systems ours,huey,...] [--repeat 3] [--jobs 20000]

`bench/run` builds the environment and calls this. Results go to --out (default
docs/bench/): results.json, results.md and chart.png; a full run also rewrites the
results section of docs/benchmarks.md.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from bench import probe, report
from bench.catalog import SYSTEMS, System, has_bulk
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
MONITOR_LINE = re.compile(r'^\S+ \[\d+ ([^\]]+)\] "([^"]+)"')


class BenchError(Exception):
    """A run that did not finish: a worker died, a timeout passed."""


@dataclass
class Snapshot:
    commands: dict[str, int]
    cpu_s: float


@dataclass
class Options:
    jobs: int
    repeat: int
    chunk: int
    warmup: int
    latency_jobs: int
    latency_rate: float
    idle_s: float
    count_jobs: int
    processes: tuple[int, ...]
    profile: bool
    out: Path
    logs: Path


@dataclass
class Results:
    meta: dict[str, Any]
    runs: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, system: str, metric: str, value: float) -> None:
        self.runs.setdefault(system, {}).setdefault(metric, []).append(value)


class Workers:
    """Worker subprocesses of one system: started, set up, then released together."""

    def __init__(self, bench: "Bench", system: System, count: int) -> None:
        self.bench, self.system = bench, system
        self.procs: list[subprocess.Popen[str]] = []
        for index in range(count):
            log = bench.log_file(f"{system.key}-worker{index}")
            env = dict(bench.env)
            if system.variant == "fork":
                env["BENCH_SYNC_COUNT"] = "1"
            proc = subprocess.Popen(
                [*bench.python, "worker", system.module, system.variant],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,  # its own group: children stop with it
            )
            self.procs.append(proc)
        try:
            for proc in self.procs:
                self._wait_ready(proc, log)
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[str], log: IO[str]) -> None:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                line = proc.stdout.readline()
                if line.strip() == "READY":
                    # Keep reading what the worker prints, so its pipe never fills.
                    threading.Thread(
                        target=shutil.copyfileobj,
                        args=(proc.stdout, log),
                        daemon=True,
                    ).start()
                    return
                if not line:
                    break
            if proc.poll() is not None:
                break
        raise BenchError(f"worker pid {proc.pid} did not get ready; see {log.name}")

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by the worker processes."""
        ticks = 0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise BenchError(f"worker pid {proc.pid} exited ({proc.returncode})")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with contextlib.suppress(ProcessLookupError):
                # Children of a worker that exited first (Celery's pool, RQ's horse).
                os.killpg(proc.pid, signal.SIGKILL)


class Monitor:
    """`redis-cli monitor` into a file: tells top-level commands from script ones."""

    def __init__(self, server: RedisServer, path: Path) -> None:
        self.path = path
        cli = shutil.which("redis-cli")
        if cli is None:
            raise BenchError("redis-cli is not on PATH (it ships with redis-server).")
        self.out = open(path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [cli, "-p", str(server.port), "monitor"], stdout=self.out
        )
        deadline = time.monotonic() + 5
        while path.stat().st_size == 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> dict[str, Counter[str]]:
        time.sleep(0.2)
        self.proc.terminate()
        self.proc.wait()
        self.out.close()
        top: Counter[str] = Counter()
        in_script: Counter[str] = Counter()
        with open(self.path) as lines:
            for line in lines:
                match = MONITOR_LINE.match(line)
                if match:
                    source, name = match.groups()
                    (in_script if source == "lua" else top)[name.lower()] += 1
        self.path.unlink()
        return {"top": top, "script": in_script}


class Bench:
    def __init__(self, options: Options, server: RedisServer, meta: RedisServer):
        self.options = options
        self.server = server
        self.client = server.client()
        self.meta = meta.client(decode_responses=False)
        self.python = [sys.executable, "-m", "bench.agent"]
        self.env = {
            **os.environ,
            "BENCH_REDIS_URL": server.url,
            "BENCH_META_URL": meta.url,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "PYTHONPATH": str(ROOT),
        }
        self._logs: dict[str, IO[str]] = {}

    def log_file(self, name: str) -> IO[str]:
        if name not in self._logs:
            self._logs[name] = open(self.options.logs / f"{name}.log", "a")  # noqa: SIM115
        return self._logs[name]

    # -- plumbing -----------------------------------------------------------

    def agent(
        self, system: System, *argv: str, env: dict[str, str] | None = None
    ) -> Any:
        log = self.log_file(f"{system.key}-producer")
        done = subprocess.run(
            [*self.python, *argv],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed; see {log.name}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def flush(self) -> None:
        self.client.flushall()
        self.meta.flushall()

    def snapshot(self) -> Snapshot:
        stats = self.client.info("commandstats")
        cpu = self.client.info("cpu")
        commands = {
            name.removeprefix("cmdstat_"): int(value["calls"])
            for name, value in stats.items()
        }
        return Snapshot(commands, cpu["used_cpu_sys"] + cpu["used_cpu_user"])

    @staticmethod
    def commands_between(before: Snapshot, after: Snapshot) -> int:
        """Commands run between two snapshots, the snapshots' INFO calls left out."""
        total = 0
        for name, calls in after.commands.items():
            if name != "info":
                total += calls - before.commands.get(name, 0)
        return total

    def wait_done(self, workers: Workers, jobs: int) -> tuple[float, float]:
        deadline = time.monotonic() + 60 + jobs / 20
        while True:
            count, first, last = probe.progress(self.meta)
            if count >= jobs:
                return first, last
            workers.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"only {count} of {jobs} jobs ran before the timeout")
            time.sleep(0.005)

    def settle_probe(self, system: System) -> None:
        """Send one latency probe and wait for it: the worker is fully up."""
        self.agent(system, "latency", system.module, "1", "1000")
        deadline = time.monotonic() + 60
        while self.meta.llen(probe.LATENCY_KEY) < 1:
            if time.monotonic() > deadline:
                raise BenchError(f"{system.key}: the warm-up job never ran")
            time.sleep(0.01)
        self.meta.delete(probe.LATENCY_KEY)

    # -- scenarios ----------------------------------------------------------

    def enqueue(self, system: System, mode: str, results: Results) -> None:
        o = self.options
        self.flush()
        before = self.snapshot()
        out = self.agent(
            system,
            "produce",
            system.module,
            mode,
            str(o.jobs),
            f"--chunk={o.chunk}",
            f"--warmup={o.warmup}",
        )
        after = self.snapshot()
        total = o.jobs + o.warmup
        results.add(system.key, f"enqueue_{mode}", o.jobs / out["seconds"])
        results.add(
            system.key, f"enqueue_{mode}_client_cpu_us", out["cpu_s"] * 1e6 / o.jobs
        )
        results.add(
            system.key,
            f"enqueue_{mode}_commands",
            self.commands_between(before, after) / total,
        )
        results.add(
            system.key,
            f"enqueue_{mode}_cpu_us",
            (after.cpu_s - before.cpu_s) * 1e6 / total,
        )

    def fill(self, system: System, jobs: int) -> None:
        self.flush()
        self.agent(system, "produce", system.module, "fill", str(jobs))

    def drain(self, system: System, processes: int, results: Results) -> None:
        jobs = system.drain_jobs or self.options.jobs
        self.fill(system, jobs)
        workers = Workers(self, system, processes)
        try:
            before, cpu = self.snapshot(), workers.cpu_s()
            workers.go()
            first, last = self.wait_done(workers, jobs)
            time.sleep(0.25)  # let acks and outcome batches reach Redis
            after, cpu = self.snapshot(), workers.cpu_s() - cpu
        finally:
            workers.stop()
        results.add(system.key, f"drain_{processes}_worker_cpu_us", cpu * 1e6 / jobs)
        results.add(system.key, f"drain_{processes}", (jobs - 1) / (last - first))
        results.add(
            system.key,
            f"drain_{processes}_commands",
            self.commands_between(before, after) / jobs,
        )
        results.add(
            system.key,
            f"drain_{processes}_cpu_us",
            (after.cpu_s - before.cpu_s) * 1e6 / jobs,
        )

    def latency(self, system: System, results: Results) -> None:
        o = self.options
        self.flush()
        workers = Workers(self, system, 1)
        try:
            workers.go()
            self.settle_probe(system)
            self.agent(
                system,
                "latency",
                system.module,
                str(o.latency_jobs),
                str(o.latency_rate),
            )
            deadline = time.monotonic() + 60
            while self.meta.llen(probe.LATENCY_KEY) < o.latency_jobs:
                workers.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"{system.key}: latency probes went missing")
                time.sleep(0.01)
        finally:
            workers.stop()
        delays = sorted(
            int(v) / 1e6 for v in self.meta.lrange(probe.LATENCY_KEY, 0, -1)
        )
        results.add(system.key, "latency_p50_ms", percentile(delays, 50))
        results.add(system.key, "latency_p99_ms", percentile(delays, 99))
        results.add(system.key, "latency_max_ms", delays[-1])

    def idle(self, system: System, results: Results) -> None:
        self.flush()
        workers = Workers(self, system, 1)
        try:
            workers.go()
            self.settle_probe(system)
            time.sleep(1.0)
            monitor = Monitor(self.server, self.options.logs / "monitor.txt")
            time.sleep(self.options.idle_s)
            seen = monitor.stop()
        finally:
            workers.stop()
        seconds = self.options.idle_s
        results.counts.setdefault(system.key, {})["idle"] = {
            "top_per_s": sum(seen["top"].values()) / seconds,
            "script_per_s": sum(seen["script"].values()) / seconds,
            "top": dict(seen["top"].most_common()),
        }

    def count(self, system: System, results: Results) -> None:
        """Commands per job by kind, from MONITOR (a separate, untimed pass)."""
        jobs = min(self.options.count_jobs, system.drain_jobs or self.options.jobs)
        counts = results.counts.setdefault(system.key, {})
        if system.enqueue:
            self.flush()
            monitor = Monitor(self.server, self.options.logs / "monitor.txt")
            self.agent(system, "produce", system.module, "one", str(jobs))
            counts["enqueue_one"] = per_job(monitor.stop(), jobs)
        self.fill(system, jobs)
        workers = Workers(self, system, 1)
        try:
            monitor = Monitor(self.server, self.options.logs / "monitor.txt")
            workers.go()
            self.wait_done(workers, jobs)
            time.sleep(0.25)
            seen = monitor.stop()
        finally:
            workers.stop()
        counts["drain_1"] = per_job(seen, jobs)

    # -- profiles -----------------------------------------------------------

    def profile(self, system: System) -> dict[str, str]:
        """pyinstrument on the enqueue loop, py-spy on a 1-process drain."""
        out = self.options.out
        self.flush()
        enqueue_path = out / f"profile-{system.key}-enqueue.txt"
        self.agent(
            system,
            "produce",
            system.module,
            "one",
            str(self.options.jobs),
            f"--warmup={self.options.warmup}",
            env={"BENCH_PYINSTRUMENT": str(enqueue_path)},
        )
        jobs = self.options.jobs
        self.fill(system, jobs)
        raw = self.options.logs / "py-spy.txt"
        workers = Workers(self, system, 1)
        try:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(workers.pids[0]),
                    "--rate",
                    "1000",
                    "--format",
                    "raw",
                    "--gil",  # where the GIL goes: what bounds one process
                    "--nonblocking",
                    "-o",
                    str(raw),
                ],
                stdout=self.log_file("py-spy"),
                stderr=subprocess.STDOUT,
            )
            time.sleep(1.0)
            workers.go()
            self.wait_done(workers, jobs)
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        finally:
            workers.stop()
        drain_path = out / f"profile-{system.key}-drain.txt"
        drain_path.write_text(report.summarize_stacks(raw.read_text()))
        return {"enqueue": enqueue_path.name, "drain": drain_path.name}


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(int(round(pct / 100 * len(values) + 0.5)) - 1, 0)
    return values[min(rank, len(values) - 1)]


def per_job(seen: dict[str, Counter[str]], jobs: int) -> dict[str, Any]:
    return {
        "top": sum(seen["top"].values()) / jobs,
        "script": sum(seen["script"].values()) / jobs,
        "top_by_name": {k: round(v / jobs, 3) for k, v in seen["top"].most_common(8)},
        "script_by_name": {
            k: round(v / jobs, 3) for k, v in seen["script"].most_common(8)
        },
    }


def installed(system: System) -> bool:
    return (
        system.requires is None or importlib.util.find_spec(system.requires) is not None
    )


def versions() -> dict[str, str]:
    found = {}
    for name in (
        "django-redisjobs",
        "redis",
        "hiredis",
        "Django",
        "rq",
        "dramatiq",
        "huey",
        "celery",
        "kombu",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(
        prog="bench/run", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny N, one repeat, ours (both APIs) and the floor only",
    )
    parser.add_argument(
        "--systems", default="", help="comma-separated keys (default: all installed)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=1_000, help="jobs per bulk call")
    parser.add_argument(
        "--scenarios",
        default="enqueue,bulk,drain,latency,idle,count",
        help="comma-separated subset",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile django-redisjobs"
    )
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    args = parser.parse_args(argv)
    smoke = args.smoke
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="bench-smoke-"))
        if smoke
        else ROOT / "docs" / "bench"
    )
    out.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    options = Options(
        jobs=200 if smoke else args.jobs,
        repeat=1 if smoke else args.repeat,
        chunk=100 if smoke else args.chunk,
        warmup=20 if smoke else 200,
        latency_jobs=50 if smoke else 1_000,
        latency_rate=200.0,
        idle_s=1.0 if smoke else 10.0,
        count_jobs=200 if smoke else 2_000,
        processes=(1, 2),
        profile=args.profile,
        out=out,
        logs=logs,
    )
    return args, options


def chosen_systems(args: argparse.Namespace) -> list[System]:
    wanted = [s for s in args.systems.split(",") if s]
    if args.smoke and not wanted:
        wanted = ["ours", "ours-tasks", "floor"]
    systems = [s for s in SYSTEMS if not wanted or s.key in wanted]
    unknown = set(wanted) - {s.key for s in SYSTEMS}
    if unknown:
        raise SystemExit(f"unknown systems: {', '.join(sorted(unknown))}")
    missing = [s.key for s in systems if not installed(s)]
    if missing:
        print(f"bench: skipping {', '.join(missing)} (not installed in this venv)")
    return [s for s in systems if installed(s)]


def run_round(
    bench: Bench, system: System, scenarios: set[str], results: Results, tag: str
) -> None:
    """One run of every timed scenario of one system."""
    tag = f"  {system.key} {tag}:"
    runs = results.runs.setdefault(system.key, {})
    if system.enqueue and "enqueue" in scenarios:
        bench.enqueue(system, "one", results)
        print(f"{tag} enqueue one by one {runs['enqueue_one'][-1]:,.0f}/s", flush=True)
    if has_bulk(system) and "bulk" in scenarios:
        bench.enqueue(system, "bulk", results)
        print(f"{tag} bulk enqueue {runs['enqueue_bulk'][-1]:,.0f}/s", flush=True)
    if "drain" in scenarios:
        for n in bench.options.processes:
            bench.drain(system, n, results)
            rate = runs[f"drain_{n}"][-1]
            print(f"{tag} drain, {n} process(es) {rate:,.0f}/s", flush=True)
    if "latency" in scenarios:
        bench.latency(system, results)
        p50, p99 = runs["latency_p50_ms"][-1], runs["latency_p99_ms"][-1]
        print(f"{tag} latency p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)


def run_all(
    bench: Bench, systems: list[System], scenarios: set[str], results: Results
) -> None:
    """Rounds go system after system, so noise on a shared machine hits all alike."""
    repeat = bench.options.repeat
    for attempt in range(repeat):
        for system in systems:
            run_round(bench, system, scenarios, results, f"run {attempt + 1}/{repeat}")
    for system in systems:
        if "idle" in scenarios and system.key != "floor" and system.variant != "c4p16":
            bench.idle(system, results)
            idle = results.counts[system.key]["idle"]["top_per_s"]
            print(f"  {system.key}: idle worker {idle:.1f} commands/s", flush=True)
        if "count" in scenarios:
            bench.count(system, results)


def main(argv: list[str] | None = None) -> int:
    args, options = parse_args(argv)
    systems = chosen_systems(args)
    scenarios = set(args.scenarios.split(","))
    started = time.time()
    with RedisServer() as server, RedisServer() as meta:
        info = server.client().info("server")
        results = Results(
            meta={
                "date": time.strftime("%Y-%m-%d", time.gmtime()),
                "smoke": args.smoke,
                "redis_version": info["redis_version"],
                "python": platform.python_version(),
                "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
                "options": {
                    "jobs": options.jobs,
                    "repeat": options.repeat,
                    "chunk": options.chunk,
                    "latency_jobs": options.latency_jobs,
                    "latency_rate": options.latency_rate,
                    "idle_s": options.idle_s,
                    "count_jobs": options.count_jobs,
                },
                "versions": versions(),
                "systems": {
                    s.key: {
                        "label": s.label,
                        "guarantee": s.guarantee,
                        "concurrency": s.concurrency,
                        "drain_jobs": s.drain_jobs or options.jobs,
                    }
                    for s in systems
                },
            }
        )
        bench = Bench(options, server, meta)
        run_all(bench, systems, scenarios, results)
        if options.profile:
            ours = next(s for s in SYSTEMS if s.key == "ours")
            results.meta["profiles"] = bench.profile(ours)
    results.meta["seconds"] = round(time.time() - started)
    summary = report.write(
        results.meta,
        results.runs,
        results.counts,
        options.out,
        update_docs=not args.smoke and options.out == ROOT / "docs" / "bench",
    )
    print(summary)
    print(f"bench: wrote {options.out} (worker logs in {options.logs})")
    if args.smoke:
        report.check_smoke(results.runs, systems)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
