"""The entry point of one worker process started by the supervisor.

The child is a fresh interpreter ("spawn"): it sets Django up, runs an ordinary
`Worker`, and tells the supervisor over a one-way pipe (JSON messages) when a job
with a timeout starts and ends, so the supervisor can stop it hard.
"""

import json
import logging
import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import django

from .. import signals
from ..conf import get_settings
from ..job import Job, duration_ms
from ..registry import autodiscover
from .config import WorkerConfig
from .core import Worker

logger = logging.getLogger(__name__)


class Reporter:
    """Sends the supervisor ``["start", id, queue, attempt, timeout_ms]`` and
    ``["end", id]`` for each job with a timeout, and ``["stats", counts]`` at exit.

    The messages ride on the `job_started` and `job_finished` signals, which the
    worker sends in the thread (or event loop) that runs the job.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()  # job threads send concurrently

    def connect(self) -> None:
        signals.job_started.connect(self._started, weak=False)
        signals.job_finished.connect(self._finished, weak=False)

    def send(self, message: list[Any]) -> None:
        try:
            with self._lock:
                self._conn.send_bytes(json.dumps(message).encode())
        except OSError:
            pass  # the supervisor is gone; the parent watch stops this worker

    def _started(self, sender: str, job: Job, **kwargs: Any) -> None:
        if job.timeout is not None:
            timeout_ms = duration_ms(job.timeout)
            self.send(["start", job.id, job.queue, job.attempts, timeout_ms])

    def _finished(self, sender: str, job: Job, **kwargs: Any) -> None:
        if job.timeout is not None:
            self.send(["end", job.id])


def watch_parent(worker: Worker) -> None:
    """Stop the worker gracefully if the supervisor dies, so no worker is orphaned."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of its sentinel pipe closes
        logger.warning("supervisor is gone, stopping worker id=%s", worker.worker_id)
        worker.request_stop()

    threading.Thread(target=watch, name="redisjobs-parent-watch", daemon=True).start()


def run_child(
    config: WorkerConfig, conn: Connection, prepare: Callable[[], None] | None
) -> None:
    """Set Django up, then run one worker until it stops; the process then exits 0.

    SIGTERM and SIGINT act as for `runworker` in thread mode.
    """
    django.setup()
    if prepare is not None:
        prepare()
    autodiscover(get_settings().autodiscover_modules)
    reporter = Reporter(conn)
    reporter.connect()
    worker = Worker(config)
    worker.install_signal_handlers()
    watch_parent(worker)
    stats = worker.run()
    reporter.send(["stats", stats.by_status])
    conn.close()
