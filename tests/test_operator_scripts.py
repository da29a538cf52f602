"""The operator's scripts against damaged data and their edge cases:
retry_jobs, delete_jobs, drop_ready, set_progress, and the pause check in
claim_jobs (STYLE.md section 6: every script has its own tests)."""

import pytest
from redis.exceptions import ResponseError

from django_redisjobs import keys
from django_redisjobs.job import Job
from django_redisjobs.queue import EnqueueRequest
from django_redisjobs.queue.claims import claim_jobs_keys
from django_redisjobs.queue.operations import (
    delete_jobs_keys,
    drop_ready_keys,
    retry_jobs_keys,
)
from tests.conftest import RedisJobs

NOW = 1_700_000_000_000
Q = "default"


def add(rj: RedisJobs, count: int = 1) -> list[str]:
    ids = [f"{i:032x}" for i in range(1, count + 1)]
    rj.store.enqueue(
        [
            EnqueueRequest(Job(id=i, func="tests.jobs.add", queue=Q), "[]", "{}")
            for i in ids
        ],
        NOW,
    )
    return ids


def test_retry_jobs_fails_before_any_change_on_a_queue_key_of_the_wrong_type(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = add(redisjobs)
    redisjobs.store.cancel(job_id, Q, NOW)
    redisjobs.client.set(keys.dead(redisjobs.prefix, Q), "not a zset")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        redisjobs.store.retry([job_id], Q, NOW)
    assert redisjobs.store.get(job_id, Q).status.value == "cancelled"


def test_retry_jobs_drops_leftover_ids_and_skips_a_key_of_another_type(
    redisjobs: RedisJobs,
) -> None:
    p = redisjobs.prefix
    redisjobs.client.zadd(keys.dead(p, Q), {"gone": 1})
    redisjobs.client.set(keys.job(p, Q, "odd"), "a string")
    codes = redisjobs.store.scripts.retry_jobs(
        retry_jobs_keys(p, Q), [NOW, "gone", "odd"]
    )
    assert codes == [-1, -1]
    assert redisjobs.client.zcard(keys.dead(p, Q)) == 0


def test_delete_jobs_answers_minus_1_for_a_key_of_another_type(
    redisjobs: RedisJobs,
) -> None:
    p = redisjobs.prefix
    redisjobs.client.set(keys.job(p, Q, "odd"), "a string")
    assert redisjobs.store.scripts.delete_jobs(delete_jobs_keys(p, Q), ["odd"]) == [-1]
    assert redisjobs.client.exists(keys.job(p, Q, "odd"))  # left for a person


def test_drop_ready_leaves_a_hash_that_is_not_queued(redisjobs: RedisJobs) -> None:
    p = redisjobs.prefix
    first, second = add(redisjobs, 2)
    redisjobs.client.hset(keys.job(p, Q, second), "status", "active")  # by hand
    taken, deleted = redisjobs.store.scripts.drop_ready(drop_ready_keys(p, Q), [10])
    assert (taken, deleted) == (2, 1)
    assert redisjobs.client.exists(keys.job(p, Q, second))
    assert not redisjobs.client.exists(keys.job(p, Q, first))


def test_set_progress_answers_0_for_a_key_of_another_type(
    redisjobs: RedisJobs,
) -> None:
    p = redisjobs.prefix
    redisjobs.client.set(keys.job(p, Q, "odd"), "a string")
    assert not redisjobs.store.set_progress("odd", Q, ("w1", 1), 0.5)


def test_a_paused_claim_changes_nothing_and_keeps_the_marker(
    redisjobs: RedisJobs,
) -> None:
    p = redisjobs.prefix
    add(redisjobs, 2)
    redisjobs.store.pause(Q)
    assert redisjobs.store.claim(Q, "w1", 5, NOW, 30_000) == []
    assert redisjobs.client.llen(keys.ready(p, Q)) == 2
    assert redisjobs.client.exists(keys.marker(p, Q))
    assert len(claim_jobs_keys(p, Q)) == 6
    redisjobs.store.resume(Q)
    assert len(redisjobs.store.claim(Q, "w1", 5, NOW, 30_000)) == 2
