"""Claims return Jobs; a claimed hash that cannot run comes back `Damaged`, never
as an exception, and the worker records it dead and goes on.

Each case plants a damaged hash by hand, next to a valid job, in real Redis.
"""

from typing import Any

import pytest

from django_redisjobs import JobStatus, keys
from django_redisjobs.exceptions import InvalidJob
from django_redisjobs.job import Job, new_job_id
from django_redisjobs.queue import Damaged, EnqueueRequest, JobStore
from django_redisjobs.queue.claims import claimed_jobs
from django_redisjobs.scripts import Claimed
from tests import jobs
from tests.conftest import RedisJobs

NOW = 1_700_000_000_000
LEASE_MS = 30_000
Q = "default"
DEEP = "[" * 200_000 + "]" * 200_000
OUT_OF_RANGE_MS = "100000000000000000000"

# field -> (value planted in the hash, the error message's start)
DAMAGE = {
    "deep args": ("args", DEEP, "has a corrupt field 'args'"),
    "huge timeout_ms": ("timeout_ms", OUT_OF_RANGE_MS, "has a corrupt field 'timeout"),
    "enqueued_ms out of range": (
        "enqueued_ms",
        OUT_OF_RANGE_MS,
        "has a corrupt field 'enqueued_ms'",
    ),
    "run_at_ms out of range": (
        "run_at_ms",
        "-" + OUT_OF_RANGE_MS,
        "has a corrupt field 'run_at_ms'",
    ),
    "finished_ms past year 9999": (
        "finished_ms",
        "253402300800000",
        "has a corrupt field 'finished_ms'",
    ),
    "another job's id": ("id", "f" * 32, "has a corrupt field 'id' in Redis: it holds"),
    "another queue": ("queue", "elsewhere", "has a corrupt field 'queue'"),
}


def job(queue: str = Q) -> Job:
    return Job(id=new_job_id(NOW), func="tests.jobs.add", queue=queue, max_attempts=3)


def enqueue(store: JobStore, *planted: Job) -> list[str]:
    store.enqueue([EnqueueRequest(j, "[1, 2]", "{}") for j in planted], NOW)
    return [j.id for j in planted]


def damage(rj: RedisJobs, job_id: str, field: str, value: str) -> None:
    rj.client.hset(keys.job(rj.prefix, Q, job_id), field, value)


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_claim_returns_a_damaged_hash_as_damaged_and_the_next_job_as_a_job(
    redisjobs: RedisJobs, case: str
) -> None:
    field, value, message = DAMAGE[case]
    broken, good = enqueue(redisjobs.store, job(), job())
    damage(redisjobs, broken, field, value)

    first, second = redisjobs.store.claim(Q, "w1", 10, NOW, LEASE_MS)

    assert isinstance(first, Damaged)
    assert (first.job.id, first.job.queue) == (broken, Q)
    assert (first.job.func, first.job.attempts, first.job.max_attempts) == (
        "tests.jobs.add",
        1,
        1,
    )
    assert isinstance(first.reason, InvalidJob)
    assert str(first.reason).startswith(f"Job {broken!r} {message}")
    assert isinstance(second, Job)
    assert (second.id, second.status, second.attempts) == (good, JobStatus.ACTIVE, 1)
    assert second.args == [1, 2]


def test_claim_returns_an_id_without_a_hash_as_damaged_without_a_reason(
    redisjobs: RedisJobs,
) -> None:
    gone = new_job_id(NOW)
    redisjobs.client.rpush(keys.ready(redisjobs.prefix, Q), gone)
    (good,) = enqueue(redisjobs.store, job())

    first, second = redisjobs.store.claim(Q, "w1", 10, NOW, LEASE_MS)

    assert first == Damaged(
        Job(id=gone, func="?", queue=Q, attempts=0, max_attempts=1), None
    )
    assert isinstance(second, Job) and second.id == good


def test_claim_keeps_what_it_can_read_of_a_hash_with_unreadable_fields(
    redisjobs: RedisJobs,
) -> None:
    (broken,) = enqueue(redisjobs.store, job())
    redisjobs.client.hdel(keys.job(redisjobs.prefix, Q, broken), "func")
    damage(redisjobs, broken, "kwargs", "[1]")

    (claimed,) = redisjobs.store.claim(Q, "w1", 10, NOW, LEASE_MS)

    assert isinstance(claimed, Damaged)
    assert (claimed.job.func, claimed.job.attempts) == ("?", 1)
    assert "no 'func' field" in str(claimed.reason)


def test_wait_then_claim_returns_damaged_hashes_too(redisjobs: RedisJobs) -> None:
    broken, good = enqueue(redisjobs.store, job(), job())
    damage(redisjobs, broken, "args", DEEP)

    first, second = redisjobs.store.wait_then_claim([Q], 1.0, "w1", 10, NOW, LEASE_MS)

    assert isinstance(first, Damaged) and first.job.id == broken
    assert isinstance(second, Job) and second.id == good


def test_an_unexpected_error_while_reading_a_claim_makes_it_damaged(
    redisjobs: RedisJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # from_fields turns every bad field into InvalidJob; a bug in it is the only
    # way to see another error, so one is planted.
    def broken_reader(fields: dict[str, str]) -> Job:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("django_redisjobs.queue.claims.from_fields", broken_reader)
    (job_id,) = enqueue(redisjobs.store, job())

    (claimed,) = redisjobs.store.claim(Q, "w1", 10, NOW, LEASE_MS)

    assert isinstance(claimed, Damaged) and claimed.job.id == job_id
    assert "ZeroDivisionError('a bug')" in str(claimed.reason)


# -- the worker ----------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_worker_records_a_damaged_job_dead_and_runs_the_next(
    redisjobs: Any, case: str
) -> None:
    field, value, message = DAMAGE[case]
    broken = jobs.add.delay(1, 2)
    good = jobs.add.delay(3, 4)
    damage(redisjobs, broken.id, field, value)

    stats = redisjobs.run_worker()

    fields = redisjobs.client.hgetall(keys.job(redisjobs.prefix, Q, broken.id))
    assert fields["status"] == "dead"
    assert fields["error_class"] == "django_redisjobs.exceptions.InvalidJob"
    assert fields["error_message"].startswith(f"Job {broken.id!r} {message}")
    assert redisjobs.client.zscore(keys.dead(redisjobs.prefix, Q), broken.id)
    assert good.refresh().result == 7
    assert (stats.by_status.get("dead"), stats.succeeded) == (1, 1)
    assert redisjobs.client.zcard(keys.active(redisjobs.prefix, Q)) == 0


def test_damaged_keeps_attempts_at_0_when_they_cannot_be_read() -> None:
    job_id = new_job_id(NOW)
    fields = {"id": job_id, "func": "tests.jobs.add", "attempts": "2.5"}

    (claimed,) = claimed_jobs([Claimed(job_id, fields)], Q)

    assert isinstance(claimed, Damaged)
    assert (claimed.job.func, claimed.job.attempts) == ("tests.jobs.add", 0)
    assert "no 'queue' field" in str(claimed.reason)
