"""One subprocess of the benchmark: a producer run or a worker, for one system.

    python -m bench.agent produce SYSTEM {one,bulk,fill} N [--chunk C] [--warmup W]
    python -m bench.agent latency SYSTEM N RATE
    python -m bench.agent worker SYSTEM VARIANT

A producer prints one JSON line with the seconds of its timed part. A worker sets
itself up, prints READY, waits for a line on stdin and only then starts, so set-up
time is never measured.
"""

import argparse
import importlib
import json
import os
import sys
import time
from types import ModuleType


def load(system: str) -> ModuleType:
    module = importlib.import_module(f"bench.systems.{system}")
    module.setup()
    return module


def produce(
    system: str, mode: str, n: int, chunk: int, warmup: int
) -> tuple[float, float]:
    """Seconds and CPU seconds of this process for the timed part."""
    module = load(system)
    bulk = getattr(module, "enqueue_bulk", None)
    if mode == "fill":
        # Not timed: pre-enqueue for a drain with the fastest API there is.
        if bulk is not None:
            bulk(n, chunk)
        else:
            module.enqueue_one(n)
        return 0.0, 0.0
    run = module.enqueue_one if mode == "one" else lambda k: bulk(k, chunk)
    if warmup:
        run(warmup)  # connections, script loads, first-call imports
    profile = os.environ.get("BENCH_PYINSTRUMENT")
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002)
        profiler.start()
    started, cpu = time.perf_counter(), time.process_time()
    run(n)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profiler is not None:
        profiler.stop()
        with open(profile, "w") as out:
            out.write(profiler.output_text(unicode=False, color=False, show_all=False))
    return seconds, cpu


def latency(system: str, n: int, rate: float) -> float:
    module = load(system)
    started = time.perf_counter()
    for i in range(n):
        pause = started + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        module.enqueue_latency(time.time_ns())
    return time.perf_counter() - started


def worker(system: str, variant: str) -> None:
    run = load(system).make_worker(variant)
    print("READY", flush=True)
    sys.stdin.readline()
    run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.agent")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce")
    p.add_argument("system")
    p.add_argument("mode", choices=["one", "bulk", "fill"])
    p.add_argument("n", type=int)
    p.add_argument("--chunk", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=0)
    p = sub.add_parser("latency")
    p.add_argument("system")
    p.add_argument("n", type=int)
    p.add_argument("rate", type=float)
    p = sub.add_parser("worker")
    p.add_argument("system")
    p.add_argument("variant")
    args = parser.parse_args()
    if args.command == "produce":
        seconds, cpu = produce(args.system, args.mode, args.n, args.chunk, args.warmup)
        print(json.dumps({"seconds": seconds, "cpu_s": cpu}), flush=True)
    elif args.command == "latency":
        print(json.dumps({"seconds": latency(args.system, args.n, args.rate)}))
    else:
        worker(args.system, args.variant)


if __name__ == "__main__":
    main()
