"""Running claimed jobs: threads for sync jobs, one event loop for async ones.

Sync jobs each hold a thread. Coroutine jobs share one asyncio loop in a thread of
its own, so I/O-bound jobs do not hold a thread each. A watchdog raises
`JobTimeout` inside a sync job's thread when it passes its timeout: best effort,
since Python only delivers it between bytecodes (a job blocked in C code notices
once it returns).

Every job that reaches the pool ends through `done`, exactly once: with its
attempt's result, or, when the pool's own code fails around it, as dead with the
reason (`worker_fault`). A thread never dies of one job.
"""

import asyncio
import ctypes
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connections

from ..conf import Settings
from ..exceptions import JobTimeout
from ..execution import AttemptResult, run_async, run_sync, worker_fault
from ..job import Job
from ..queue import JobStore
from ..registry import FunctionSpec
from .claim import Prefetch
from .ledger import Ledger
from .supervision import Spawn

logger = logging.getLogger(__name__)

Done = Callable[[AttemptResult], None]
# Work handed to a waiting thread by `run_here`: it returns a job for that thread
# to run, or None.
Task = Callable[[], "tuple[FunctionSpec, Job] | None"]


class ExecutorPool:
    """Runs claimed jobs and hands each `AttemptResult` to `done`.

    `deadline_set` is called whenever a job with a timeout starts, so the
    watchdog (the renew thread, see renew.py) recomputes its next wake-up.
    """

    def __init__(
        self,
        threads: int,
        settings: Settings,
        store: JobStore,
        ledger: Ledger,
        done: Done,
        deadline_set: Callable[[], None],
        prefetch: Prefetch,
    ) -> None:
        self._settings, self._store, self._ledger = settings, store, ledger
        self._done, self._deadline_set, self._prefetch = done, deadline_set, prefetch
        self._work: queue.SimpleQueue[tuple[FunctionSpec, Job] | Task | None] = (
            queue.SimpleQueue()
        )
        self._waiting = 0  # threads blocked for work; a hint (see run_here)
        self._waiting_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._thread_count = threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    def start(self, spawn: Spawn) -> None:
        """Start the threads with `spawn(name, target)` (the worker's supervised
        thread starter)."""
        self._threads = [
            spawn(f"redisjobs-exec-{n}", self._serve) for n in range(self._thread_count)
        ]

    def submit(self, spec: FunctionSpec, job: Job) -> None:
        if spec.is_async:
            asyncio.run_coroutine_threadsafe(
                self._run_coroutine(spec, job), self._event_loop()
            )
        else:
            self._work.put((spec, job))

    def run_here(self, task: Task) -> bool:
        """Give `task` to a thread that is waiting for work, if one is and no job
        is queued; that thread then runs the job `task` returns. False: none was
        free, the caller does the work itself.

        The count of waiting threads is read without a lock, to keep locks off
        the path of every job: a thread may still take a job queued just before
        `task`, so the caller bounds how long it waits for `task` to start
        (`claim.Handover`).
        """
        if not self._waiting or not self._work.empty():
            return False
        self._work.put(task)
        return True

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
        return self._ledger.interrupt_overdue(time.monotonic(), _raise_in_thread)

    # -- the threads -----------------------------------------------------------

    def _serve(self) -> None:
        try:
            while (item := self._next_job()) is not None:
                # A task from `run_here` may leave a job for this thread.
                if not isinstance(item, tuple) and (item := item()) is None:
                    continue
                self._run_one(*item)
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
        with self._waiting_lock:
            self._waiting += 1
        try:
            item = self._work.get()
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        if item is not None:
            close_old_connections()
        return item

    def _run_one(self, spec: FunctionSpec, job: Job) -> None:
        deadline = (
            time.monotonic() + job.timeout.total_seconds() if job.timeout else None
        )
        if not self._ledger.start(job.id, threading.get_ident(), deadline):
            return  # handed back at stop before it started
        if deadline is not None:
            self._deadline_set()  # the watchdog recomputes its next wake
        try:
            # Without a deadline the watchdog never raises here: nothing to fence.
            func = self._fence(spec.func, job.id) if deadline is not None else None
            result = run_sync(spec, job, self._settings, self._store, func)
        except BaseException as err:  # the pool's code failed, not the job's
            result = worker_fault(job, err)
        finally:
            close_old_connections()
        self._prefetch.timed(result.duration.total_seconds())
        self._done(result)

    def _fence(self, func: Callable[..., Any], job_id: str) -> Callable[..., Any]:
        """Arm the watchdog only while `func` runs.

        A JobTimeout raised (or still pending) anywhere in here surfaces inside
        run_sync's own handler; once `func` returns, a pending one is cleared under
        the ledger's lock, which the watchdog takes too, so it can never hit the
        pool's own code.
        """

        def fenced(*args: Any, **kwargs: Any) -> Any:
            self._ledger.enter_job_code(job_id)
            try:
                return func(*args, **kwargs)
            finally:
                self._ledger.leave_job_code(job_id, _clear_pending_exception)

        return fenced

    async def _run_coroutine(self, spec: FunctionSpec, job: Job) -> None:
        if not self._ledger.start(job.id, 0, None):
            return
        try:
            result = await run_async(spec, job, self._settings, self._store)
        except BaseException as err:  # the pool's code failed, not the job's
            result = worker_fault(job, err)
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


class _Drained(Exception):
    """Delivered to the job's own thread to replace a pending `JobTimeout`."""


def _clear_pending_exception(thread_id: int) -> None:
    """Drop a `JobTimeout` not yet raised in `thread_id` (the calling thread).

    Python 3.11 keeps its interpreter-wide "async exception pending" flag set
    after ``PyThreadState_SetAsyncExc(id, NULL)`` until some thread raises one,
    and every thread then takes the slow path at each bytecode check (under a
    tracer such as coverage, for ever). So there, a harmless exception replaces
    the pending one and is raised and caught here at once, which drops the flag.
    """
    if sys.version_info >= (3, 12) or thread_id != threading.get_ident():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        return
    try:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread_id), ctypes.py_object(_Drained)
        )
        for _ in range(1_000_000):  # raised at the first bytecode check
            pass
    except _Drained:
        pass


def _raise_in_thread(thread_id: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(JobTimeout)
    )
