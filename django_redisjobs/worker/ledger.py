"""The ledger: the one record of every job a worker holds, and of its counts.

A job enters the ledger when a claim leases it to this worker and leaves it once
its outcome is stored in Redis. In between it is in one of three states:

- ``CLAIMED``: leased, waiting for an executor thread (or the event loop);
- ``RUNNING``: its attempt runs now;
- ``ENDED``: its attempt is over (or it was handed back at stop); its outcome
  waits for the recorder.

Everything else the worker needs about held jobs is read from here: the free
slots of the next claim (claimed and running jobs, plus slots reserved by a claim
under way), the ids whose leases the heartbeat renews (every state), the jobs
to hand back at stop (claimed, then running), the watchdog's deadlines and the
outcome counts the heartbeat publishes. One lock guards all of it, so no two
threads ever see the same job in two states. The per-job work under the lock is
a dict write and a counter, a few hundred nanoseconds.
"""

import enum
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..job import Job, JobStatus


class Held(enum.Enum):
    """Where a held job is in this worker."""

    CLAIMED = "claimed"
    RUNNING = "running"
    ENDED = "ended"


@dataclass(slots=True)
class Entry:
    """One held job. Only the ledger changes it, under its lock."""

    job: Job
    state: Held = Held.CLAIMED
    thread_id: int = 0  # the executor thread running it (0: none, or async)
    deadline: float | None = None  # time.monotonic() of its timeout, if any
    in_job_code: bool = False  # the watchdog may raise only while this holds
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """A snapshot of a worker's counts since it started."""

    claimed: int
    by_status: dict[str, int]  # attempt outcomes: a JobStatus value or "requeued"

    @property
    def succeeded(self) -> int:
        return self.by_status.get(JobStatus.SUCCEEDED.value, 0)

    @property
    def retried(self) -> int:
        return self.by_status.get(JobStatus.RETRYING.value, 0)

    @property
    def dead(self) -> int:
        return self.by_status.get(JobStatus.DEAD.value, 0)

    @property
    def requeued(self) -> int:
        return self.by_status.get("requeued", 0)


class Ledger:
    """Lock-guarded state of every job this worker holds; see the module text."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._unended = 0  # entries CLAIMED or RUNNING: they occupy a slot
        self._reserved = 0  # slots taken by a claim that has not returned yet
        self._claimed_total = 0
        self._by_status: Counter[str] = Counter()
        self._lock = threading.Lock()
        # Waiters: the claim loop for free slots, burst mode's idle check and
        # the stop for ended or recorded jobs.
        self._changed = threading.Condition(self._lock)
        self._slot_wanted = -1  # a claim waits until unended + reserved <= this
        self._waiting = 0  # threads in wait_*: `end` notifies only when some wait

    # -- slots ----------------------------------------------------------------

    def reserve(self, room: int, need: int, limit: int, timeout_s: float) -> int:
        """Wait up to `timeout_s` until `need` of `room` slots are free, then
        reserve every free one (at most `limit`) for a claim; 0 on time-out.

        A claim returns its reservation through `claimed()`, or `release()` when
        it fails.
        """
        with self._changed:
            self._slot_wanted = room - need
            if not self._changed.wait_for(
                lambda: self._unended + self._reserved <= self._slot_wanted,
                timeout=timeout_s,
            ):
                return 0
            taken = min(room - self._unended - self._reserved, limit)
            self._reserved += taken
            return taken

    def release(self, reserved: int) -> None:
        """Give back reserved slots a claim did not use."""
        with self._changed:
            self._reserved -= reserved
            self._changed.notify_all()

    # -- a job's way through the worker -----------------------------------------

    def claimed(self, jobs: Iterable[Job], reserved: int) -> None:
        """A claim that reserved `reserved` slots leased `jobs` (no more than that)."""
        with self._changed:
            count = 0
            for job in jobs:
                self._entries[job.id] = Entry(job)
                count += 1
            if count > reserved:
                raise ValueError("A claim leased more jobs than it had slots.")
            self._claimed_total += count
            self._unended += count
            self._reserved -= reserved
            if count < reserved:
                self._changed.notify_all()

    def start(self, job_id: str, thread_id: int, deadline: float | None) -> bool:
        """The job's attempt starts now; False when it was handed back meanwhile
        (a stop), and it must not run."""
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is None or entry.state is not Held.CLAIMED:
                return False
            entry.state = Held.RUNNING
            entry.thread_id, entry.deadline = thread_id, deadline
            return True

    def end(self, job_id: str, status: str) -> bool:
        """The job's attempt ended with `status` (a JobStatus value), or it will
        not run ("requeued" and the like); count it. False when the job had already
        ended (it was handed back at stop while it ran): drop its outcome."""
        with self._changed:
            entry = self._entries.get(job_id)
            if entry is None or entry.state is Held.ENDED:
                return False
            entry.state = Held.ENDED
            entry.in_job_code = False
            self._unended -= 1
            self._by_status[status] += 1
            if self._unended + self._reserved <= self._slot_wanted or self._waiting:
                self._changed.notify_all()
            return True

    def recorded(self, job_ids: Iterable[str]) -> None:
        """These jobs' outcomes are in Redis (or never will be): forget them."""
        with self._changed:
            for job_id in job_ids:
                entry = self._entries.pop(job_id, None)
                if entry is not None and entry.state is not Held.ENDED:
                    self._unended -= 1  # dropped before it ended (no hash)
            self._changed.notify_all()

    # -- handing back at stop ---------------------------------------------------

    def hand_back_unstarted(self) -> list[Job]:
        """End every job still waiting for a thread as "requeued" and return
        them, in claim order: no thread starts them afterwards."""
        return self._hand_back(Held.CLAIMED)

    def hand_back_running(self) -> list[Job]:
        """End every running job as "requeued" (past the grace period); an
        outcome its thread reports later is dropped (see `end`)."""
        return self._hand_back(Held.RUNNING)

    def _hand_back(self, state: Held) -> list[Job]:
        with self._changed:
            jobs = [e.job for e in self._entries.values() if e.state is state]
            for job in jobs:
                entry = self._entries[job.id]
                entry.state, entry.in_job_code = Held.ENDED, False
                self._by_status["requeued"] += 1
            self._unended -= len(jobs)
            self._changed.notify_all()
            return jobs

    # -- reading ------------------------------------------------------------------

    def held_by_queue(self) -> dict[str, list[str]]:
        """Ids of every held job by queue: the leases the heartbeat renews."""
        with self._lock:
            held: dict[str, list[str]] = {}
            for job_id, entry in self._entries.items():
                held.setdefault(entry.job.queue, []).append(job_id)
            return held

    def held_ids(self) -> list[str]:
        """Ids of every held job, in claim order."""
        with self._lock:
            return list(self._entries)

    def counts(self) -> WorkerStats:
        with self._lock:
            return WorkerStats(self._claimed_total, dict(self._by_status))

    def busy(self) -> bool:
        """True while some job is claimed or running (read without the lock)."""
        return self._unended > 0

    @property
    def claimed_total(self) -> int:
        return self._claimed_total  # an int read: atomic under the GIL

    # -- waiting ------------------------------------------------------------------

    def wait_until_settled(self, stop: Callable[[], bool]) -> None:
        """Until nothing is held (every outcome stored), or `stop()` is true."""
        self._wait(lambda: not self._entries, stop, None)

    def wait_until_ended(self, deadline: float) -> None:
        """Until no job is claimed or running, or `time.monotonic()` passes
        `deadline`."""
        self._wait(lambda: self._unended == 0, lambda: False, deadline)

    def _wait(
        self,
        done: Callable[[], bool],
        stop: Callable[[], bool],
        deadline: float | None,
    ) -> None:
        with self._changed:
            self._waiting += 1
            try:
                while not done() and not stop():
                    left = 0.5 if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        return
                    self._changed.wait(min(left, 0.5))
            finally:
                self._waiting -= 1

    # -- the watchdog ---------------------------------------------------------------

    def enter_job_code(self, job_id: str) -> None:
        """The job's own function starts: from now the watchdog may interrupt it."""
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is not None and entry.state is Held.RUNNING:
                entry.in_job_code = True

    def leave_job_code(self, job_id: str, clear: Callable[[int], None]) -> None:
        """The job's function returned: `clear` (run under the lock the watchdog
        takes) drops an interruption that may still be pending for its thread.

        Only a job the watchdog interrupted can have one; the others skip
        `clear`, which is not free (see `run._clear_pending_exception`).
        """
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is not None:
                entry.in_job_code = False
                if entry.timed_out:
                    clear(entry.thread_id)

    def interrupt_overdue(
        self, now: float, interrupt: Callable[[int], None]
    ) -> float | None:
        """Call `interrupt(thread_id)` for each job in its own code past its
        deadline (once per attempt); return the next deadline still ahead."""
        upcoming: float | None = None
        with self._lock:
            for entry in self._entries.values():
                if entry.deadline is None or entry.timed_out or not entry.in_job_code:
                    continue
                if entry.deadline <= now:
                    entry.timed_out = True
                    interrupt(entry.thread_id)
                elif upcoming is None or entry.deadline < upcoming:
                    upcoming = entry.deadline
        return upcoming
