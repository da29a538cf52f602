"""Each job's attempt history: one entry per ended attempt, bounded, never fatal."""

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_redisjobs import JobStatus, keys
from django_redisjobs.job import ATTEMPT_HISTORY_LIMIT, Job, now_epoch_ms
from django_redisjobs.queue import Outcome
from tests import jobs

LEASE_MS = 60_000


def test_retried_job_keeps_each_attempt_in_order(redisjobs: Any) -> None:
    handle = jobs.fails_then_succeeds.delay(2)

    redisjobs.run_worker(name="hist-w")

    history = handle.refresh().history
    assert [a.number for a in history] == [1, 2, 3]
    assert [a.outcome for a in history] == ["retrying", "retrying", "succeeded"]
    assert {a.worker for a in history} == {"hist-w"}
    assert history[0].error_class == "builtins.ConnectionError"
    assert history[2].error_class == ""
    for attempt in history:
        assert attempt.started_at is not None and attempt.finished_at is not None
        assert attempt.started_at <= attempt.finished_at
    assert history[0].finished_at <= history[1].started_at  # type: ignore[operator]


def test_dead_job_history_ends_dead(redisjobs: Any) -> None:
    handle = jobs.always_fails.delay("x" * 1000)

    redisjobs.run_worker()

    history = handle.refresh().history
    assert [a.outcome for a in history] == ["retrying", "retrying", "dead"]
    assert history[-1].error_message == "x" * 200  # cut; the job keeps it whole
    assert handle.error is not None and handle.error.message == "x" * 1000


def test_lost_attempt_is_recorded_and_requeue_adds_none(redisjobs: Any) -> None:
    store = redisjobs.store
    handle = jobs.add.delay(1, 1)
    now = now_epoch_ms()
    store.claim("default", "gone-w", 1, now, LEASE_MS)

    store.recover_worker("default", "gone-w", "Worker gone-w was killed", now)
    (entry,) = handle.refresh().history
    assert (entry.number, entry.worker, entry.outcome) == (1, "gone-w", "lost")
    assert entry.error_message == "Worker gone-w was killed during attempt 1."

    (claimed,) = store.claim("default", "stopping-w", 1, now, LEASE_MS)
    requeued = Outcome(handle.id, "default", claimed.attempts, "requeued")
    assert store.finish([requeued], "stopping-w", now) == [1]
    assert handle.refresh().status is JobStatus.QUEUED
    assert handle.history == [entry]


def test_history_keeps_only_the_newest_attempts(redisjobs: Any) -> None:
    store = redisjobs.store
    handle = jobs.add.delay(1, 1)
    job_key = keys.job(redisjobs.prefix, "default", handle.id)
    # A job that went round more often than the history keeps.
    redisjobs.client.hset(job_key, "max_attempts", 100)
    for attempt in range(1, ATTEMPT_HISTORY_LIMIT + 6):
        now = now_epoch_ms()
        (claimed,) = store.claim("default", "w", 1, now, LEASE_MS)
        assert claimed.attempts == attempt
        retry = Outcome(handle.id, "default", attempt, "retrying", due_ms=now)
        store.finish([retry], "w", now)
        store.promote_due("default", now_epoch_ms() + 1, 10)

    history = handle.refresh().history
    assert len(history) == ATTEMPT_HISTORY_LIMIT
    assert history[0].number == 6 and history[-1].number == ATTEMPT_HISTORY_LIMIT + 5


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    # Each example enqueues and ends its own job; the queue is empty between them.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.one_of(
        st.text(max_size=20),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=3), inner, max_size=3)
            ),
            max_leaves=8,
        ).map(json.dumps),
    )
)
def test_any_stored_history_still_lets_the_job_end(redisjobs: Any, stored: str) -> None:
    """A hand-written `history` of any shape neither fails the finish script nor
    the read: it is replaced, or its unreadable entries are skipped."""
    store = redisjobs.store
    handle = jobs.add.delay(1, 1)
    job_key = keys.job(redisjobs.prefix, "default", handle.id)
    redisjobs.client.hset(job_key, "history", stored)
    now = now_epoch_ms()
    (claimed,) = store.claim("default", "fuzz-w", 1, now, LEASE_MS)
    assert claimed.id == handle.id

    done = Outcome(handle.id, "default", claimed.attempts, "succeeded", ttl_ms=60_000)
    assert store.finish([done], "fuzz-w", now) == [1]

    job: Job = handle.refresh().job
    assert job.status is JobStatus.SUCCEEDED
    assert job.history[-1].outcome == "succeeded"
    assert job.history[-1].worker == "fuzz-w"


def test_a_first_attempt_success_stores_no_history_and_reads_one(
    redisjobs: Any,
) -> None:
    """The common case writes no `history` field (a long one would turn every
    such hash from a listpack into a hash table): the job's own fields give it."""
    handle = jobs.add.delay(1, 2)

    redisjobs.run_worker(name="once-w")

    job_key = keys.job(redisjobs.prefix, "default", handle.id)
    assert redisjobs.client.hget(job_key, "history") is None
    assert redisjobs.client.object("encoding", job_key) == "listpack"
    (attempt,) = handle.refresh().history
    assert (attempt.number, attempt.worker, attempt.outcome) == (
        1,
        "once-w",
        "succeeded",
    )
    assert attempt.started_at == handle.job.started_at
    assert attempt.finished_at == handle.job.finished_at


def test_a_message_cut_for_the_history_stays_utf8(redisjobs: Any) -> None:
    """A 2-byte character across the 200-byte cut must not leave half of itself
    in the field: the next claim would find the hash not UTF-8."""
    handle = jobs.always_fails.delay("x" * 199 + "é" * 10)

    redisjobs.run_worker()

    history = handle.refresh().history
    assert [a.outcome for a in history] == ["retrying", "retrying", "dead"]
    assert history[0].error_message == "x" * 199
    assert handle.error is not None and handle.error.message.endswith("é" * 10)
