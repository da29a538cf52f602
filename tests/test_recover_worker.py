"""recover_jobs.lua for a dead worker (`JobStore.recover_worker`)."""

from typing import Any

from django_redisjobs import JobStatus, keys
from django_redisjobs.job import now_epoch_ms
from django_redisjobs.queue import WORKER_LOST, Outcome
from tests import jobs

LEASE_MS = 60_000


def test_recover_worker_takes_back_only_the_dead_workers_jobs(redisjobs: Any) -> None:
    store, prefix = redisjobs.store, redisjobs.prefix
    first, second, third = (jobs.add.delay(n, n) for n in range(3))
    now = now_epoch_ms()
    dead_claims = store.claim("default", "dead-w", 2, now, LEASE_MS)
    (live_claim,) = store.claim("default", "live-w", 1, now, LEASE_MS)
    assert [c.id for c in dead_claims] == [first.id, second.id]
    assert store.held_by("dead-w", "default") == {first.id: 1, second.id: 1}

    recovered = store.recover_worker(
        "default", "dead-w", "Worker process dead-w exited with code 1", now
    )

    assert (recovered.requeued, recovered.dead) == (2, 0)
    assert sorted(recovered.job_ids) == sorted([first.id, second.id])
    for handle in (first, second):
        job = handle.refresh().job
        assert job.status is JobStatus.QUEUED
        assert job.lost == 1
        assert job.attempts == 1  # the lost attempt counts
        assert job.worker == ""
        assert job.error is not None
        assert job.error.exc_class == WORKER_LOST
        assert job.error.message == (
            "Worker process dead-w exited with code 1 during attempt 1."
        )
    ready = redisjobs.client.lrange(keys.ready(prefix, "default"), 0, -1)
    assert sorted(ready) == sorted([first.id, second.id])
    assert third.refresh().status is JobStatus.ACTIVE
    assert third.job.worker == "live-w"
    assert live_claim.id == third.id
    active = redisjobs.client.zrange(keys.active(prefix, "default"), 0, -1)
    assert active == [third.id]
    # The dead worker's late write cannot land on a job it no longer holds.
    late = Outcome(first.id, "default", 1, JobStatus.SUCCEEDED.value, ttl_ms=1000)
    assert store.finish([late], "dead-w", now) == [0]


def test_recover_worker_sends_a_job_out_of_attempts_to_dead(redisjobs: Any) -> None:
    handle = jobs.add.using(max_attempts=1).delay(1, 1)
    now = now_epoch_ms()
    store = redisjobs.store
    store.claim("default", "dead-w", 1, now, LEASE_MS)
    pubsub = redisjobs.client.pubsub()
    pubsub.subscribe(store.end_channel(handle.id, "default"))

    recovered = store.recover_worker(
        "default", "dead-w", "Worker process dead-w was killed by signal SIGKILL", now
    )

    assert (recovered.requeued, recovered.dead) == (0, 1)
    job = handle.refresh().job
    assert job.status is JobStatus.DEAD
    assert job.lost == 1
    assert job.finished_at is not None
    dead_key = keys.dead(redisjobs.prefix, "default")
    assert redisjobs.client.zscore(dead_key, handle.id) == now
    ttl_ms = redisjobs.client.pttl(keys.job(redisjobs.prefix, "default", handle.id))
    assert 86_400_000 < ttl_ms <= 7 * 86_400_000
    messages = [pubsub.get_message(timeout=1.0) for _ in range(2)]
    assert any(m and m["type"] == "message" and m["data"] == "dead" for m in messages)
    pubsub.close()


def test_recover_worker_script_leaves_candidates_it_does_not_hold(
    redisjobs: Any,
) -> None:
    # A candidate read from the active set may have moved on before the script
    # runs: another worker claimed it, or it finished. The script checks again.
    claimed, finished = jobs.add.delay(1, 1), jobs.add.delay(2, 2)
    now = now_epoch_ms()
    store, p = redisjobs.store, redisjobs.prefix
    store.claim("default", "live-w", 1, now, LEASE_MS)
    store.claim("default", "dead-w", 1, now, LEASE_MS)
    outcome = Outcome(finished.id, "default", 1, "succeeded", ttl_ms=60_000)
    assert store.finish([outcome], "dead-w", now) == [1]

    recovered = store.scripts.recover_jobs(
        [
            keys.active(p, "default"),
            keys.ready(p, "default"),
            keys.prioritized(p, "default"),
            keys.dead(p, "default"),
            keys.marker(p, "default"),
            keys.job_prefix(p, "default"),
            keys.cancelled(p, "default"),
            keys.unique_prefix(p, "default"),
        ],
        [
            now,
            10,
            60_000,
            "chan:",
            WORKER_LOST,
            60_000,
            "dead-w",
            "gone",
            claimed.id,
            finished.id,
        ],
    )

    assert (recovered.requeued, recovered.dead, recovered.job_ids) == (0, 0, [])
    assert claimed.refresh().status is JobStatus.ACTIVE
    assert claimed.job.worker == "live-w"
    assert finished.refresh().status is JobStatus.SUCCEEDED
    assert finished.job.lost == 0


def test_recover_worker_ends_a_job_whose_cancel_was_requested(redisjobs: Any) -> None:
    handle = jobs.add.delay(1, 1)
    now = now_epoch_ms()
    store = redisjobs.store
    store.claim("default", "dead-w", 1, now, LEASE_MS)
    store.cancel(handle.id, "default", now)  # active: only flagged

    recovered = store.recover_worker("default", "dead-w", "Worker dead-w died", now)

    assert (recovered.requeued, recovered.dead, recovered.job_ids) == (
        0,
        0,
        [handle.id],
    )
    job = handle.refresh().job
    assert job.status is JobStatus.CANCELLED
    assert job.lost == 1
    cancelled_key = keys.cancelled(redisjobs.prefix, "default")
    assert redisjobs.client.zscore(cancelled_key, handle.id) == now
