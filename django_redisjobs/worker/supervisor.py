"""Process mode: a supervisor that keeps P child worker processes running.

Each child is a fresh interpreter (multiprocessing's "spawn" context) that runs
`django.setup()` and an ordinary `Worker` with its own threads, Redis connection
and database connections; nothing is inherited from the supervisor but the
environment and `sys.path`. Every child has a worker id the supervisor chose, so
the supervisor knows whose jobs are whose in Redis.

The supervisor
- replaces a child that exits unexpectedly (segfault, ``os._exit``, OOM kill) and
  takes its jobs back at once through `JobStore.recover_worker` instead of waiting
  for their leases to expire: the lost attempt counts, as for any lost worker;
- stops jobs past their timeout hard: a child reports over a pipe each job with a
  timeout as it starts and ends; when one is still running `kill_grace` after its
  timeout (the child's own watchdog, the thread-mode timeout, fires first and
  stops pure-Python code), the supervisor SIGKILLs the child, records the attempt
  as failed with `JobTimeout` (retried or dead per the function's policy), puts
  the child's other jobs back in their queue without using an attempt, and starts
  a new child;
- on SIGTERM/SIGINT sends SIGTERM to every child (each stops claiming, waits up to
  its grace period, requeues what still runs, exits 0) and returns once they are
  gone; a second SIGINT kills the children and returns at once.
"""

import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from ..conf import get_settings
from ..job import now_epoch_ms
from ..queue import JobStore, get_store
from ..registry import Registry, registry
from .child import run_child
from .child_recovery import ChildRecovery, LostChild, RunningJob
from .config import WorkerConfig, default_worker_id

logger = logging.getLogger(__name__)

_SPAWN = multiprocessing.get_context("spawn")
# A child that dies sooner than this after its start is replaced at once the first
# time, then after a growing delay (0.5 s, 1 s, ... 30 s), so a broken deploy does
# not spin; a child that lived longer is replaced at once and resets the count.
_QUICK_EXIT_S = 10.0
_RESTART_DELAY_S = 0.5
_RESTART_DELAY_MAX_S = 30.0
# How long past --grace children may take to exit before they are killed.
_STOP_MARGIN_S = 15.0
# How long a stopping supervisor waits for Redis to record its lost children.
_RECOVERY_CLOSE_S = 10.0


@dataclass(frozen=True)
class SupervisorConfig:
    """How the supervisor runs; `runworker --processes` builds it.

    `worker` is each child's config; its `name`, if any, is the prefix of the
    children's worker ids. `prepare` runs in each child right after
    `django.setup()` (runworker sets up logging there); it must be picklable, i.e.
    a module-level function or a `functools.partial` of one.
    """

    processes: int
    worker: WorkerConfig
    kill_grace: timedelta = timedelta(seconds=1)
    prepare: Callable[[], None] | None = None


@dataclass
class _Child:
    slot: int
    worker_id: str
    process: BaseProcess
    conn: Connection
    started: float  # Supervisor.monotonic()
    running: dict[str, RunningJob] = field(default_factory=dict)
    stop_sent: bool = False
    said_all: bool = False  # its pipe reached EOF: wait on its sentinel alone


class Supervisor:
    """Runs `config.processes` child workers until stopped.

    `clock` gives epoch ms for what is written to Redis; `monotonic` stands in
    for `time.monotonic` (restarts, kill times, the stop deadline) in tests.
    """

    def __init__(
        self,
        config: SupervisorConfig,
        *,
        store: JobStore | None = None,
        functions: Registry = registry,
        clock: Callable[[], int] = now_epoch_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.monotonic = monotonic
        self.settings = get_settings()
        self.store = store or get_store()
        self.base_id = config.worker.name or default_worker_id()
        self.by_status: dict[str, int] = {}
        self._children: list[_Child] = []
        self._restart_at: dict[int, float] = {}  # slot -> self.monotonic()
        self._quick_exits: dict[int, int] = {}
        self._warn_next = config.worker.warn_durability  # only the first child warns
        self.recovery = ChildRecovery(
            self.store, self.settings, functions, config.worker.queues, clock
        )
        self._stopping = False
        self._kill_now = False
        self._stop_deadline: float | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def request_stop(self) -> None:
        """Ask every child to stop gracefully; `run()` returns once all are gone.

        Safe to call from a signal handler."""
        self._stopping = True
        self._wake()

    def kill_now(self) -> None:
        """Kill every child and make `run()` return at once (a second SIGINT)."""
        self._kill_now = True
        self._wake()

    def _wake(self) -> None:
        # A full pipe already wakes the loop; after run() returned the pipe is
        # closed (-1) and a late signal has nothing to wake.
        if self._wake_w < 0:
            return
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    # -- the loop -----------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped; 0 after a graceful stop, 1 after `kill_now`."""
        logger.info(
            "supervisor started id=%s processes=%d queues=%s",
            self.base_id,
            self.config.processes,
            ",".join(self.config.worker.queues),
        )
        self.recovery.start()
        try:
            for slot in range(self.config.processes):
                self._start(slot)
            while self._children or self._restart_at:
                if self._kill_now:
                    self._kill_all()
                    return 1
                self._step()
            self.recovery.close(timeout_s=_RECOVERY_CLOSE_S)
        finally:
            wake_r, wake_w = self._wake_r, self._wake_w
            self._wake_r = self._wake_w = -1
            os.close(wake_r)
            os.close(wake_w)
        logger.info("supervisor stopped id=%s", self.base_id)
        return 0

    def _step(self) -> None:
        self._wait()
        self._read_messages()
        self._reap()
        self._enforce_timeouts()
        if self._stopping:
            self._forward_stop()
        self._start_due()

    def _wait(self) -> None:
        now = self.monotonic()
        wake_at = [now + 1.0, *self._restart_at.values()]
        wake_at += [r.kill_at for c in self._children for r in c.running.values()]
        if self._stop_deadline is not None:
            wake_at.append(self._stop_deadline)
        objects: list[Any] = [self._wake_r]
        for child in self._children:
            objects.append(child.process.sentinel)
            if not child.said_all:
                objects.append(child.conn)
        wait(objects, timeout=max(min(wake_at) - now, 0.0))
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 512)

    # -- children -----------------------------------------------------------

    def _start(self, slot: int) -> None:
        worker_id = f"{self.base_id}.{slot}.{os.urandom(2).hex()}"
        config = dataclasses.replace(
            self.config.worker, name=worker_id, warn_durability=self._warn_next
        )
        self._warn_next = False
        reader, writer = _SPAWN.Pipe(duplex=False)
        process = _SPAWN.Process(
            target=run_child,
            args=(config, writer, self.config.prepare),
            name=f"redisjobs-worker-{slot}",
            daemon=True,
        )
        process.start()
        writer.close()  # the child holds the only write end: EOF means it is gone
        self._children.append(
            _Child(slot, worker_id, process, reader, self.monotonic())
        )
        logger.info(
            "worker process started id=%s pid=%s slot=%d", worker_id, process.pid, slot
        )

    def _start_due(self) -> None:
        now = self.monotonic()
        for slot, at in list(self._restart_at.items()):
            if self._stopping:
                del self._restart_at[slot]
            elif at <= now:
                del self._restart_at[slot]
                self._start(slot)

    def _replace(self, child: _Child, crashed: bool) -> None:
        """Start a child in `child`'s slot; later if children there crash young."""
        if self._stopping:
            return
        delay = 0.0
        if self.monotonic() - child.started >= _QUICK_EXIT_S:
            # A long life resets the count, however it ended (a clean exit after
            # --max-jobs, a kill for a timeout): the slot is not crash-looping.
            self._quick_exits[child.slot] = 0
        elif crashed:
            quick = self._quick_exits.get(child.slot, 0) + 1
            self._quick_exits[child.slot] = quick
            if quick > 1:
                # Doublings stop at 16, well past the cap: past 1023 of them the
                # delay would not fit in a float (OverflowError).
                doublings = min(quick - 2, 16)
                delay = min(_RESTART_DELAY_S * 2**doublings, _RESTART_DELAY_MAX_S)
        self._restart_at[child.slot] = self.monotonic() + delay

    def _remove(self, child: _Child) -> None:
        self._children.remove(child)
        child.conn.close()

    def _reap(self) -> None:
        for child in list(self._children):
            code = child.process.exitcode
            if code is None:
                continue
            self._read_from(child)  # its last words: final stats, ended jobs
            self._remove(child)
            if code == 0:
                logger.info(
                    "worker process exited id=%s pid=%s",
                    child.worker_id,
                    child.process.pid,
                )
                if not self.config.worker.burst:
                    self._replace(child, crashed=False)
                continue
            reason = f"Worker process {child.worker_id} {_describe_exit(code)}"
            logger.warning(
                "worker process died id=%s pid=%s exitcode=%s, recovering its jobs",
                child.worker_id,
                child.process.pid,
                code,
            )
            self.recovery.add(LostChild(child.worker_id, reason, [], crashed=True))
            self._replace(child, crashed=True)

    def _forward_stop(self) -> None:
        now = self.monotonic()
        if self._stop_deadline is None:
            logger.info("supervisor stopping id=%s", self.base_id)
            grace_s = self.config.worker.grace.total_seconds()
            self._stop_deadline = now + grace_s + _STOP_MARGIN_S
        for child in self._children:
            if not child.stop_sent:
                child.process.terminate()  # SIGTERM: the child's graceful stop
                child.stop_sent = True
        if now >= self._stop_deadline:
            for child in list(self._children):
                logger.warning(
                    "worker process did not stop in time, killing it id=%s pid=%s",
                    child.worker_id,
                    child.process.pid,
                )
                self._kill(child, "was killed after it failed to stop in time", [])

    def _kill(self, child: _Child, why: str, timed_out: list[RunningJob]) -> None:
        child.process.kill()
        child.process.join()
        self._remove(child)
        reason = f"Worker process {child.worker_id} {why}"
        self.recovery.add(LostChild(child.worker_id, reason, timed_out, crashed=False))
        self._replace(child, crashed=False)

    def _kill_all(self) -> None:
        logger.warning("second interrupt, killing worker processes; leases will expire")
        for child in self._children:
            child.process.kill()
        for child in list(self._children):
            child.process.join()
            self._remove(child)

    # -- messages from children ---------------------------------------------

    def _read_messages(self) -> None:
        for child in list(self._children):
            self._read_from(child)

    def _read_from(self, child: _Child) -> None:
        try:
            while not child.said_all and child.conn.poll():
                self._handle(child, json.loads(child.conn.recv_bytes()))
        except (EOFError, OSError):
            child.said_all = True  # it closed the pipe or died; _reap sees its exit

    def _handle(self, child: _Child, message: list[Any]) -> None:
        kind = message[0]
        if kind == "start":
            job_id, queue_name, attempt, timeout_ms = message[1:]
            now = self.monotonic()
            kill_at = now + timeout_ms / 1000 + self.config.kill_grace.total_seconds()
            child.running[job_id] = RunningJob(
                job_id, queue_name, attempt, timeout_ms, now, kill_at
            )
        elif kind == "end":
            child.running.pop(message[1], None)
        elif kind == "stats":
            for status, count in message[1].items():
                self.by_status[status] = self.by_status.get(status, 0) + count

    # -- timeouts -----------------------------------------------------------

    def _enforce_timeouts(self) -> None:
        now = self.monotonic()
        for child in list(self._children):
            late = [r for r in child.running.values() if r.kill_at <= now]
            if not late:
                continue
            for running in late:
                logger.warning(
                    "job past its timeout, killing its worker process "
                    "job id=%s queue=%s attempt=%d timeout_s=%g worker=%s pid=%s",
                    running.job_id,
                    running.queue,
                    running.attempt,
                    running.timeout_ms / 1000,
                    child.worker_id,
                    child.process.pid,
                )
            self._kill(child, "was killed for a job past its timeout", late)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed by signal {name}"
    return f"exited with code {code}"


def install_supervisor_signal_handlers(supervisor: Supervisor) -> None:
    """SIGTERM/SIGINT stop the children gracefully; a second SIGINT kills them."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if supervisor.stopping and signum == signal.SIGINT:
            supervisor.kill_now()
        else:
            supervisor.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


__all__ = [
    "Supervisor",
    "SupervisorConfig",
    "install_supervisor_signal_handlers",
]
