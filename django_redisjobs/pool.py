"""The worker's execution pool: threads for sync jobs, one event loop for async ones.

Sync jobs each hold a thread. Coroutine jobs share one asyncio loop in a thread of
its own, so I/O-bound jobs do not hold a thread each. A watchdog raises `JobTimeout`
inside a sync job's thread when it passes its timeout: best effort, since Python only
delivers it between bytecodes (a job blocked in C code notices once it returns).
"""

import asyncio
import ctypes
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections, connections

from .conf import Settings
from .exceptions import JobTimeout
from .execution import AttemptResult, run_async, run_sync
from .job import Job
from .queue import JobStore
from .registry import FunctionSpec

logger = logging.getLogger(__name__)

Done = Callable[[AttemptResult], None]
# Work handed to a waiting thread by `run_here`: it returns a job for that thread
# to run, or None.
Task = Callable[[], "tuple[FunctionSpec, Job] | None"]


@dataclass
class _Running:
    job: Job
    thread_id: int
    deadline: float | None  # time.monotonic() value
    in_job_code: bool = False  # the watchdog may raise only while this holds
    timed_out: bool = False


class ExecutorPool:
    """Runs claimed jobs and hands each `AttemptResult` to `done`."""

    def __init__(
        self,
        threads: int,
        settings: Settings,
        store: JobStore,
        done: Done,
        deadline_set: threading.Event,
        timed: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._settings = settings
        self._timed = timed  # told how long each sync attempt ran
        self._deadline_set = deadline_set
        self._store = store
        self._done = done
        self._work: queue.SimpleQueue[tuple[FunctionSpec, Job] | Task | None] = (
            queue.SimpleQueue()
        )
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._waiting = 0  # threads blocked for work; a hint (see run_here)
        self._threads = [
            threading.Thread(
                target=self._serve, name=f"redisjobs-exec-{n}", daemon=True
            )
            for n in range(threads)
        ]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, spec: FunctionSpec, job: Job) -> None:
        if spec.is_async:
            future = asyncio.run_coroutine_threadsafe(
                self._run_coroutine(spec, job), self._event_loop()
            )
            future.add_done_callback(_log_crash)
        else:
            self._work.put((spec, job))

    def run_here(self, task: Task) -> bool:
        """Give `task` to a thread that is waiting for work, if one is and no job
        is queued; that thread then runs the job `task` returns. False: none was
        free, the caller does the work itself.

        The count of waiting threads is read without a lock, to keep locks off
        the path of every job: a thread may still take a job queued just before
        `task`, so the caller bounds how long it waits for `task` to start
        (`claiming.Handover`).
        """
        if not self._waiting or not self._work.empty():
            return False
        self._work.put(task)
        return True

    def take_unstarted(self) -> list[Job]:
        """Remove and return sync jobs still waiting for a thread (at shutdown)."""
        jobs: list[Job] = []
        while True:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                return jobs
            if isinstance(item, tuple):
                jobs.append(item[1])

    def running_jobs(self) -> list[Job]:
        with self._lock:
            return [running.job for running in self._running.values()]

    def stop(self) -> None:
        """Let idle threads exit; running jobs are not interrupted."""
        for _ in self._threads:
            self._work.put(None)
        if self._loop is not None and self._loop_thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=5)
            if not self._loop.is_running():
                self._loop.close()

    def enforce_timeouts(self) -> float | None:
        """Raise JobTimeout in threads past their deadline; return the next deadline."""
        now = time.monotonic()
        upcoming: float | None = None
        with self._lock:
            for running in self._running.values():
                if running.deadline is None or running.timed_out:
                    continue
                if not running.in_job_code:
                    continue
                if running.deadline <= now:
                    running.timed_out = True
                    _raise_in_thread(running.thread_id)
                elif upcoming is None or running.deadline < upcoming:
                    upcoming = running.deadline
        return upcoming

    def _serve(self) -> None:
        try:
            while (item := self._next_job()) is not None:
                # A task from `run_here` may leave a job for this thread.
                if not isinstance(item, tuple) and (item := item()) is None:
                    continue
                spec, job = item
                result = self._run_guarded(spec, job)
                self._timed(result.duration.total_seconds())
                self._done(result)
        finally:
            # Connections are per thread; close this thread's before it ends.
            connections.close_all()

    def _next_job(self) -> tuple[FunctionSpec, Job] | Task | None:
        """The next job for this thread, or None to end it.

        Like a request, a job starts and ends with Django's connection checks, so
        a worker thread never keeps a broken or outlived database connection. The
        check after a job also covers the next one when that one was already
        waiting; after an idle wait it runs again, since time passed.
        """
        try:
            return self._work.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            self._waiting += 1
        try:
            item = self._work.get()
        finally:
            with self._lock:
                self._waiting -= 1
        if item is not None:
            close_old_connections()
        return item

    def _run_guarded(self, spec: FunctionSpec, job: Job) -> AttemptResult:
        deadline = (
            time.monotonic() + job.timeout.total_seconds() if job.timeout else None
        )
        running = _Running(job, threading.get_ident(), deadline)
        with self._lock:
            self._running[job.id] = running
        if deadline is not None:
            self._deadline_set.set()  # the watchdog recomputes its next wake
        try:
            # Without a deadline the watchdog never raises here: nothing to fence.
            func = self._fence(spec.func, running) if deadline is not None else None
            return run_sync(spec, job, self._settings, self._store, func)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
            close_old_connections()

    def _fence(self, func: Callable[..., Any], running: _Running) -> Callable[..., Any]:
        """Arm the watchdog only while `func` runs.

        A JobTimeout raised (or still pending) anywhere in here surfaces inside
        run_sync's own handler; once `func` returns, a pending one is cleared under
        the watchdog's lock, so it can never hit the pool's own code.
        """

        def fenced(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                running.in_job_code = True
            try:
                return func(*args, **kwargs)
            finally:
                with self._lock:
                    running.in_job_code = False
                    _clear_pending_exception(running.thread_id)

        return fenced

    async def _run_coroutine(self, spec: FunctionSpec, job: Job) -> None:
        with self._lock:
            self._running[job.id] = _Running(job, 0, None)
        try:
            result = await run_async(spec, job, self._settings, self._store)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
        self._done(result)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="redisjobs-async", daemon=True
            )
            thread.start()
            self._loop, self._loop_thread = loop, thread
        return self._loop


def _clear_pending_exception(thread_id: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


def _raise_in_thread(thread_id: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(JobTimeout)
    )


def _log_crash(future: "asyncio.Future[None] | object") -> None:
    exc = getattr(future, "exception", lambda: None)()
    if exc is not None:
        logger.error("async job runner failed", exc_info=exc)
