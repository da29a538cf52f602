"""The worker's ledger: slots, the states of held jobs, hand-backs and counts."""

import itertools
import sys
import threading
from collections.abc import Iterator

import pytest

from django_redisjobs.job import Job
from django_redisjobs.worker.claim import PREFETCH_WINDOW_S, Prefetch
from django_redisjobs.worker.ledger import Held, Ledger

_ids = itertools.count()


def make_jobs(count: int, queue: str = "default") -> list[Job]:
    return [
        Job(id=f"job-{next(_ids)}", func="tests.jobs.echo", queue=queue)
        for _ in range(count)
    ]


def claim(ledger: Ledger, prefetch: Prefetch, limit: int = 1000) -> list[Job]:
    """Reserve without waiting and fill every reserved slot with a job."""
    reserved = prefetch.reserve(ledger, limit, timeout_s=0)
    jobs = make_jobs(reserved)
    ledger.claimed(jobs, reserved)
    return jobs


def end(ledger: Ledger, jobs: list[Job], status: str = "succeeded") -> None:
    for job in jobs:
        assert ledger.start(job.id, 1, None)
        assert ledger.end(job.id, status)


# -- slots: concurrency plus an adaptive prefetch --------------------------------


def test_untimed_worker_uses_the_whole_prefetch() -> None:
    prefetch = Prefetch(concurrency=4, prefetch=64)
    assert prefetch.ahead() == 64
    assert len(claim(Ledger(), prefetch)) == 68


def test_short_attempts_keep_the_whole_prefetch_and_long_ones_shrink_it() -> None:
    short = Prefetch(concurrency=4, prefetch=64)
    short.timed(0.0001)
    assert short.ahead() == 64

    ten_ms = Prefetch(concurrency=4, prefetch=64)
    ten_ms.timed(0.01)
    assert ten_ms.ahead() == int(4 * PREFETCH_WINDOW_S / 0.01)

    long = Prefetch(concurrency=4, prefetch=64)
    long.timed(30.0)
    assert long.ahead() == 1  # still one ready when a thread frees up
    assert len(claim(Ledger(), long)) == 5


def test_average_moves_towards_recent_attempts() -> None:
    prefetch = Prefetch(concurrency=4, prefetch=64)
    prefetch.timed(30.0)
    for _ in range(200):
        prefetch.timed(0.0001)
    assert prefetch.ahead() == 64


def test_no_prefetch_holds_one_job_per_thread() -> None:
    ledger, prefetch = Ledger(), Prefetch(concurrency=2, prefetch=0)
    prefetch.timed(0.0001)
    assert prefetch.ahead() == 0
    first = claim(ledger, prefetch, limit=10)
    assert len(first) == 2
    assert claim(ledger, prefetch, limit=10) == []
    end(ledger, first[:1])
    assert len(claim(ledger, prefetch, limit=10)) == 1


def test_claims_again_only_once_half_the_prefetch_is_free() -> None:
    ledger, prefetch = Ledger(), Prefetch(concurrency=4, prefetch=16)
    held = claim(ledger, prefetch, limit=100)
    assert len(held) == 20
    end(ledger, held[:7])
    assert claim(ledger, prefetch, limit=100) == []  # 7 free, 8 wanted
    end(ledger, held[7:8])
    assert len(claim(ledger, prefetch, limit=100)) == 8


def test_limit_below_half_the_prefetch_is_enough_to_claim() -> None:
    ledger, prefetch = Ledger(), Prefetch(concurrency=4, prefetch=16)
    held = claim(ledger, prefetch, limit=20)
    end(ledger, held[:2])
    assert len(claim(ledger, prefetch, limit=2)) == 2  # max_jobs leaves only 2


def test_a_waiting_claim_wakes_when_enough_jobs_end() -> None:
    ledger, prefetch = Ledger(), Prefetch(concurrency=1, prefetch=4)
    held = claim(ledger, prefetch, limit=10)
    assert len(held) == 5
    taken: list[int] = []
    waiter = threading.Thread(
        target=lambda: taken.append(prefetch.reserve(ledger, 10, 30))
    )
    waiter.start()
    end(ledger, held[:2])
    waiter.join(timeout=30)
    assert taken == [2]


def test_a_claim_that_fails_or_finds_less_gives_its_slots_back() -> None:
    ledger, prefetch = Ledger(), Prefetch(concurrency=2, prefetch=0)
    reserved = prefetch.reserve(ledger, 10, 0)
    assert reserved == 2
    ledger.release(reserved)  # the claim failed
    reserved = prefetch.reserve(ledger, 10, 0)
    ledger.claimed(make_jobs(1), reserved)  # only one job was ready
    assert prefetch.reserve(ledger, 10, 0) == 1


def test_a_claim_cannot_enter_more_jobs_than_it_reserved() -> None:
    ledger = Ledger()
    with pytest.raises(ValueError, match="more jobs than it had slots"):
        ledger.claimed(make_jobs(2), 1)


# -- states ----------------------------------------------------------------------


def test_a_job_is_held_from_its_claim_until_its_outcome_is_recorded() -> None:
    ledger = Ledger()
    (job,) = make_jobs(1, queue="mail")
    ledger.claimed([job], 1)
    assert ledger.held_by_queue() == {"mail": [job.id]}
    assert ledger.start(job.id, 1, None)
    assert ledger.end(job.id, "succeeded")
    # Ended but not yet stored: the lease must still be renewed.
    assert ledger.held_by_queue() == {"mail": [job.id]}
    assert not ledger.busy()
    ledger.recorded([job.id])
    assert ledger.held_by_queue() == {}
    assert ledger.counts().by_status == {"succeeded": 1}
    assert ledger.counts().claimed == 1


def test_stop_hands_back_waiting_jobs_in_claim_order_and_they_never_start() -> None:
    ledger = Ledger()
    jobs = make_jobs(3)
    ledger.claimed(jobs, 3)
    assert ledger.start(jobs[0].id, 1, None)
    assert ledger.hand_back_unstarted() == jobs[1:]
    assert not ledger.start(jobs[1].id, 2, None)
    assert ledger.counts().requeued == 2
    assert ledger.busy()  # the first one still runs


def test_an_outcome_that_ends_after_its_job_was_handed_back_is_refused() -> None:
    ledger = Ledger()
    (job,) = make_jobs(1)
    ledger.claimed([job], 1)
    assert ledger.start(job.id, 1, None)
    assert ledger.hand_back_running() == [job]
    assert ledger.end(job.id, "succeeded") is False
    assert ledger.counts().by_status == {"requeued": 1}


def test_waiting_for_running_jobs_ends_at_the_deadline() -> None:
    ledger = Ledger()
    ledger.claimed(make_jobs(1), 1)
    ledger.wait_until_ended(deadline=0)  # long past: returns at once
    assert ledger.busy()


def test_the_watchdog_interrupts_only_jobs_in_their_own_code() -> None:
    ledger = Ledger()
    inside, outside = make_jobs(2)
    ledger.claimed([inside, outside], 2)
    assert ledger.start(inside.id, 11, deadline=5.0)
    assert ledger.start(outside.id, 22, deadline=5.0)
    ledger.enter_job_code(inside.id)
    interrupted: list[int] = []
    assert ledger.interrupt_overdue(4.0, interrupted.append) == 5.0
    assert ledger.interrupt_overdue(6.0, interrupted.append) is None
    assert ledger.interrupt_overdue(7.0, interrupted.append) is None  # once only
    assert interrupted == [11]
    ledger.enter_job_code(outside.id)
    cleared: list[int] = []
    ledger.leave_job_code(inside.id, cleared.append)
    ledger.leave_job_code(outside.id, cleared.append)
    assert cleared == [11]  # only an interrupted job can have one pending
    assert ledger._entries[inside.id].state is Held.RUNNING


# -- counts ----------------------------------------------------------------------


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.slow
def test_outcome_counts_from_many_threads_add_up(tiny_switch_interval: None) -> None:
    # WorkerStats.count once lost updates here: 400,000 outcomes summed to
    # about 287,000. The heartbeat publishes these counts.
    ledger, threads, per_thread = Ledger(), 4, 25_000
    jobs = make_jobs(threads * per_thread)
    ledger.claimed(jobs, len(jobs))
    for job in jobs:
        ledger.start(job.id, 1, None)

    def end_some(part: list[Job]) -> None:
        for index, job in enumerate(part):
            ledger.end(job.id, "succeeded" if index % 2 else "dead")

    workers = [
        threading.Thread(target=end_some, args=(jobs[n::threads],))
        for n in range(threads)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    counts = ledger.counts()
    assert sum(counts.by_status.values()) == len(jobs)
    assert counts.succeeded + counts.dead == len(jobs)
