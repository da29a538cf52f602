"""Unique locks, cancellation and claim order at the level of the Lua scripts.

Against the suite's real Redis through `JobStore`; every call gets its `now_ms`, so
nothing here sleeps. (tests/test_scripts.py covers the scripts' other behaviour.)
"""

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.client import PubSub

from django_redisjobs import JobDoesNotExist, keys
from django_redisjobs.job import Job, new_job_id, now_epoch_ms, priority_score
from django_redisjobs.queue import Cancelled, EnqueueRequest, Outcome, Placed
from tests.conftest import RedisJobs

# Near the real time: Redis expires keys by its own clock, so windows and TTLs
# set from NOW must lie in the real future.
NOW = now_epoch_ms()
LEASE_MS = 30_000
TTL_MS = 60_000
HOUR_MS = 3_600_000
FUNC = "tests.queueing_jobs.plain"
Q = "default"


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def make_job(
    *,
    unique_key: str = "",
    unique_until_ms: int = 0,
    priority: int = 0,
    enqueued_ms: int = NOW,
    run_at_ms: int = 0,
    max_attempts: int = 3,
    result_ttl_ms: int = TTL_MS,
) -> Job:
    return Job(
        id=new_job_id(enqueued_ms),
        func=FUNC,
        queue=Q,
        priority=priority,
        max_attempts=max_attempts,
        result_ttl=timedelta(milliseconds=result_ttl_ms) if result_ttl_ms else None,
        enqueued_at=at(enqueued_ms),
        run_at=at(run_at_ms) if run_at_ms else None,
        unique_key=unique_key,
        unique_until=at(unique_until_ms) if unique_until_ms else None,
    )


def enqueue(
    rj: RedisJobs, *jobs: Job, now_ms: int = NOW, at_front: bool = False
) -> list[Placed]:
    requests = [EnqueueRequest(job, "[1]", "{}", at_front) for job in jobs]
    return rj.store.enqueue_detailed(requests, now_ms)


def add(rj: RedisJobs, **options: int | str) -> str:
    job = make_job(**options)  # type: ignore[arg-type]  # options fit make_job
    later = int(options.get("run_at_ms", 0)) > NOW
    assert enqueue(rj, job) == [Placed(job.id, True, scheduled=later)]
    return job.id


def claimed(rj: RedisJobs, **options: int | str) -> str:
    job_id = add(rj, **options)
    assert [c.id for c in rj.store.claim(Q, "w1", 10, NOW, LEASE_MS)] == [job_id]
    return job_id


def finish(
    rj: RedisJobs, job_id: str, status: str, now_ms: int = NOW + 100, **kw: object
) -> int:
    outcome = Outcome(job_id, Q, 1, status, **kw)  # type: ignore[arg-type]  # test kwargs
    (code,) = rj.store.finish([outcome], "w1", now_ms)
    return code


def job_key(rj: RedisJobs, job_id: str) -> str:
    return keys.job(rj.prefix, Q, job_id)


def lock_key(rj: RedisJobs, unique_key: str) -> str:
    return keys.unique(rj.prefix, Q, unique_key)


def fields(rj: RedisJobs, job_id: str) -> dict[str, str]:
    return rj.client.hgetall(job_key(rj, job_id))


def ready(rj: RedisJobs) -> list[str]:
    return rj.client.lrange(keys.ready(rj.prefix, Q), 0, -1)


def members(rj: RedisJobs, kind: str) -> list[str]:
    return rj.client.zrange(getattr(keys, kind)(rj.prefix, Q), 0, -1)


@contextlib.contextmanager
def subscribed(rj: RedisJobs, job_id: str) -> Iterator[PubSub]:
    with rj.client.pubsub() as pubsub:
        pubsub.subscribe(keys.job_channel(rj.prefix, Q, job_id))
        assert pubsub.get_message(timeout=5) is not None  # the confirmation
        yield pubsub


def published(rj: RedisJobs, pubsub: PubSub, job_id: str) -> str:
    """The next message on the job's channel; "sentinel" if the script sent none."""
    rj.client.publish(keys.job_channel(rj.prefix, Q, job_id), "sentinel")
    message = pubsub.get_message(timeout=5)
    assert message is not None
    return str(message["data"])


# -- enqueue_jobs: unique locks ---------------------------------------------------


def test_unique_job_takes_the_lock_without_ttl_and_stores_its_window(
    redisjobs: RedisJobs,
) -> None:
    job_id = add(redisjobs, unique_key="k", unique_until_ms=NOW + HOUR_MS)

    assert redisjobs.client.get(lock_key(redisjobs, "k")) == job_id
    assert redisjobs.client.pttl(lock_key(redisjobs, "k")) == -1
    stored = fields(redisjobs, job_id)
    assert (stored["unique_key"], stored["unique_until_ms"]) == (
        "k",
        str(NOW + HOUR_MS),
    )


def test_job_without_unique_key_takes_no_lock(redisjobs: RedisJobs) -> None:
    add(redisjobs)
    stored = fields(redisjobs, ready(redisjobs)[0])
    assert "unique_key" not in stored and "unique_until_ms" not in stored
    prefix = keys.unique_prefix(redisjobs.prefix, Q)
    assert redisjobs.client.keys(f"{prefix}*") == []


@pytest.mark.parametrize(
    ("holder_options", "hold"),
    [
        ({}, "queued"),
        ({"run_at_ms": NOW + HOUR_MS}, "scheduled"),
        ({"priority": 5}, "queued"),
    ],
)
def test_second_job_with_a_held_key_gets_the_holder_and_stores_nothing(
    redisjobs: RedisJobs, holder_options: dict[str, int], hold: str
) -> None:
    holder = add(redisjobs, unique_key="k", **holder_options)
    assert fields(redisjobs, holder)["status"] == hold
    again = make_job(unique_key="k")

    assert enqueue(redisjobs, again, now_ms=NOW + 5) == [Placed(holder, False)]
    assert not redisjobs.client.exists(job_key(redisjobs, again.id))
    assert again.id not in ready(redisjobs) + members(redisjobs, "prioritized")
    assert redisjobs.store.enqueue([EnqueueRequest(again, "[1]", "{}")], NOW) == [False]


def test_active_and_retrying_jobs_hold_their_key(redisjobs: RedisJobs) -> None:
    holder = claimed(redisjobs, unique_key="k")
    assert enqueue(redisjobs, make_job(unique_key="k")) == [Placed(holder, False)]

    assert finish(redisjobs, holder, "retrying", due_ms=NOW + 500) == 1
    assert fields(redisjobs, holder)["status"] == "retrying"
    assert redisjobs.client.get(lock_key(redisjobs, "k")) == holder
    assert enqueue(redisjobs, make_job(unique_key="k")) == [Placed(holder, False)]


def test_same_key_twice_in_one_batch_stores_the_first_only(
    redisjobs: RedisJobs,
) -> None:
    first, second, other = (
        make_job(unique_key="k"),
        make_job(unique_key="k"),
        make_job(unique_key="other"),
    )

    assert enqueue(redisjobs, first, second, other) == [
        Placed(first.id, True),
        Placed(first.id, False),
        Placed(other.id, True),
    ]
    assert ready(redisjobs) == [first.id, other.id]


def test_replayed_id_of_a_unique_job_reports_0_not_a_holder(
    redisjobs: RedisJobs,
) -> None:
    job = make_job(unique_key="k")
    enqueue(redisjobs, job)
    assert enqueue(redisjobs, job) == [Placed(job.id, False)]
    assert ready(redisjobs) == [job.id]


def test_key_is_free_again_once_its_job_ended(redisjobs: RedisJobs) -> None:
    first = claimed(redisjobs, unique_key="k")
    assert finish(redisjobs, first, "succeeded", ttl_ms=TTL_MS) == 1
    assert not redisjobs.client.exists(lock_key(redisjobs, "k"))

    second = add(redisjobs, unique_key="k")
    assert redisjobs.client.get(lock_key(redisjobs, "k")) == second


@pytest.mark.parametrize("stale", ["hash deleted", "ended without window"])
def test_stale_lock_is_taken_over_by_the_next_job(
    redisjobs: RedisJobs, stale: str
) -> None:
    first = add(redisjobs, unique_key="k")
    if stale == "hash deleted":
        redisjobs.client.delete(job_key(redisjobs, first))
    else:
        redisjobs.client.hset(job_key(redisjobs, first), "status", "succeeded")

    second = add(redisjobs, unique_key="k")

    assert redisjobs.client.get(lock_key(redisjobs, "k")) == second


def test_key_with_braces_and_spaces_stays_in_the_queue_slot(
    redisjobs: RedisJobs,
) -> None:
    from redis.crc import key_slot

    key = "{tenant 7}:report"
    job_id = add(redisjobs, unique_key=key)
    assert redisjobs.client.get(lock_key(redisjobs, key)) == job_id
    assert key_slot(lock_key(redisjobs, key).encode()) == key_slot(
        keys.ready(redisjobs.prefix, Q).encode()
    )


# -- finish_jobs and recover_expired: releasing locks -------------------------------


@pytest.mark.parametrize("outcome", ["succeeded", "dead", "cancelled"])
def test_ending_a_job_deletes_its_lock_when_no_window_is_left(
    redisjobs: RedisJobs, outcome: str
) -> None:
    job_id = claimed(redisjobs, unique_key="k", unique_until_ms=NOW + 50)
    assert finish(redisjobs, job_id, outcome, now_ms=NOW + 50, ttl_ms=TTL_MS) == 1
    assert not redisjobs.client.exists(lock_key(redisjobs, "k"))


def test_ending_a_job_inside_its_window_keeps_lock_and_job_until_it_closes(
    redisjobs: RedisJobs,
) -> None:
    until = NOW + 10 * HOUR_MS
    job_id = claimed(redisjobs, unique_key="k", unique_until_ms=until)

    assert finish(redisjobs, job_id, "succeeded", ttl_ms=TTL_MS) == 1

    assert redisjobs.client.get(lock_key(redisjobs, "k")) == job_id
    assert redisjobs.client.pexpiretime(lock_key(redisjobs, "k")) == until
    # The result TTL (1 minute) would drop the job before the window closes.
    assert redisjobs.client.pexpiretime(job_key(redisjobs, job_id)) == until
    assert enqueue(redisjobs, make_job(unique_key="k")) == [Placed(job_id, False)]


def test_window_shorter_than_the_result_ttl_leaves_the_job_ttl_alone(
    redisjobs: RedisJobs,
) -> None:
    until = NOW + 600_000
    job_id = claimed(redisjobs, unique_key="k", unique_until_ms=until)
    finish(redisjobs, job_id, "succeeded", ttl_ms=HOUR_MS)
    assert redisjobs.client.pexpiretime(lock_key(redisjobs, "k")) == until
    assert redisjobs.client.pttl(job_key(redisjobs, job_id)) > HOUR_MS - 60_000


def test_ending_a_job_leaves_a_lock_another_job_took_over(
    redisjobs: RedisJobs,
) -> None:
    first = claimed(redisjobs, unique_key="k")
    redisjobs.client.set(lock_key(redisjobs, "k"), "newer-job")
    finish(redisjobs, first, "succeeded", ttl_ms=TTL_MS)
    assert redisjobs.client.get(lock_key(redisjobs, "k")) == "newer-job"


def test_requeued_job_keeps_its_lock(redisjobs: RedisJobs) -> None:
    job_id = claimed(redisjobs, unique_key="k")
    assert finish(redisjobs, job_id, "requeued") == 1
    assert redisjobs.client.get(lock_key(redisjobs, "k")) == job_id


def test_lost_job_requeued_keeps_its_lock_and_buried_one_releases_it(
    redisjobs: RedisJobs,
) -> None:
    kept = claimed(redisjobs, unique_key="kept")
    buried = add(redisjobs, unique_key="buried", max_attempts=1)
    redisjobs.store.claim(Q, "w1", 10, NOW, LEASE_MS)

    recovered = redisjobs.store.recover_expired(Q, NOW + LEASE_MS + 1, 10)

    assert (recovered.requeued, recovered.dead) == (1, 1)
    assert redisjobs.client.get(lock_key(redisjobs, "kept")) == kept
    assert not redisjobs.client.exists(lock_key(redisjobs, "buried"))
    assert fields(redisjobs, buried)["status"] == "dead"


# -- cancel requested while active --------------------------------------------------


@pytest.mark.parametrize("outcome", ["retrying", "requeued"])
def test_job_whose_cancel_was_requested_ends_cancelled_instead_of_running_again(
    redisjobs: RedisJobs, outcome: str
) -> None:
    job_id = claimed(redisjobs, unique_key="k")
    assert redisjobs.store.cancel(job_id, Q, NOW + 50) is Cancelled.REQUESTED

    with subscribed(redisjobs, job_id) as pubsub:
        assert finish(redisjobs, job_id, outcome, ttl_ms=TTL_MS, due_ms=NOW + 1) == 1
        assert published(redisjobs, pubsub, job_id) == "cancelled"

    stored = fields(redisjobs, job_id)
    assert (stored["status"], stored["finished_ms"]) == ("cancelled", str(NOW + 100))
    assert members(redisjobs, "cancelled") == [job_id]
    assert members(redisjobs, "scheduled") == ready(redisjobs) == []
    assert 0 < redisjobs.client.pttl(job_key(redisjobs, job_id)) <= TTL_MS
    assert not redisjobs.client.exists(lock_key(redisjobs, "k"))


def test_cancelled_at_requeue_without_ttl_uses_the_jobs_result_ttl(
    redisjobs: RedisJobs,
) -> None:
    job_id = claimed(redisjobs, result_ttl_ms=5 * TTL_MS)
    redisjobs.store.cancel(job_id, Q, NOW)
    assert finish(redisjobs, job_id, "requeued") == 1
    assert TTL_MS < redisjobs.client.pttl(job_key(redisjobs, job_id)) <= 5 * TTL_MS


def test_cancel_requested_does_not_change_success_or_death(
    redisjobs: RedisJobs,
) -> None:
    ok, failed = claimed(redisjobs), claimed(redisjobs)
    for job_id in (ok, failed):
        redisjobs.store.cancel(job_id, Q, NOW)
    finish(redisjobs, ok, "succeeded", ttl_ms=TTL_MS, result_json="1")
    finish(redisjobs, failed, "dead", ttl_ms=TTL_MS)
    assert fields(redisjobs, ok)["status"] == "succeeded"
    assert fields(redisjobs, failed)["status"] == "dead"


def test_lost_job_whose_cancel_was_requested_ends_cancelled(
    redisjobs: RedisJobs,
) -> None:
    job_id = claimed(redisjobs, unique_key="k", result_ttl_ms=0)
    redisjobs.store.cancel(job_id, Q, NOW)
    now = NOW + LEASE_MS + 1

    with subscribed(redisjobs, job_id) as pubsub:
        recovered = redisjobs.store.recover_expired(Q, now, 10)
        assert published(redisjobs, pubsub, job_id) == "cancelled"

    assert (recovered.requeued, recovered.dead, recovered.job_ids) == (0, 0, [job_id])
    stored = fields(redisjobs, job_id)
    assert (stored["status"], stored["lost"]) == ("cancelled", "1")
    assert members(redisjobs, "cancelled") == [job_id]
    assert ready(redisjobs) == []
    assert not redisjobs.client.exists(lock_key(redisjobs, "k"))
    # No result TTL on the job: the settings' RESULT_TTL_S (1 day) applies.
    assert 3_600_000 < redisjobs.client.pttl(job_key(redisjobs, job_id)) <= 86_400_000


# -- cancel_job -------------------------------------------------------------------


def test_cancel_queued_job_takes_it_out_of_the_list_and_ends_it(
    redisjobs: RedisJobs,
) -> None:
    before, job_id, after = add(redisjobs), add(redisjobs), add(redisjobs)

    with subscribed(redisjobs, job_id) as pubsub:
        assert redisjobs.store.cancel(job_id, Q, NOW + 7) is Cancelled.ENDED
        assert published(redisjobs, pubsub, job_id) == "cancelled"

    assert ready(redisjobs) == [before, after]
    stored = fields(redisjobs, job_id)
    assert stored["status"] == "cancelled"
    assert stored["finished_ms"] == str(NOW + 7)
    assert stored["cancel_requested"] == "1"
    assert redisjobs.client.zrange(
        keys.cancelled(redisjobs.prefix, Q), 0, -1, withscores=True
    ) == [(job_id, NOW + 7)]
    assert 0 < redisjobs.client.pttl(job_key(redisjobs, job_id)) <= TTL_MS


@pytest.mark.parametrize(
    ("options", "collection"),
    [
        ({"priority": 3}, "prioritized"),
        ({"priority": -3}, "prioritized"),
        ({"run_at_ms": NOW + HOUR_MS}, "scheduled"),
        ({"run_at_ms": NOW + HOUR_MS, "priority": 9}, "scheduled"),
    ],
)
def test_cancel_takes_a_job_out_of_its_sorted_set(
    redisjobs: RedisJobs, options: dict[str, int], collection: str
) -> None:
    job_id = add(redisjobs, **options)
    kept = add(redisjobs, **options, enqueued_ms=NOW + 1)
    assert set(members(redisjobs, collection)) == {job_id, kept}

    assert redisjobs.store.cancel(job_id, Q, NOW) is Cancelled.ENDED

    assert members(redisjobs, collection) == [kept]
    assert fields(redisjobs, job_id)["status"] == "cancelled"


def test_cancel_retrying_job_takes_it_out_of_the_scheduled_set(
    redisjobs: RedisJobs,
) -> None:
    job_id = claimed(redisjobs)
    finish(redisjobs, job_id, "retrying", due_ms=NOW + 9_000)

    assert redisjobs.store.cancel(job_id, Q, NOW + 200) is Cancelled.ENDED

    assert members(redisjobs, "scheduled") == []
    assert redisjobs.store.promote_due(Q, NOW + 9_000, 10) == (0, -1)
    assert fields(redisjobs, job_id)["status"] == "cancelled"


def test_cancel_active_job_sets_its_flag_and_leaves_it_leased(
    redisjobs: RedisJobs,
) -> None:
    job_id = claimed(redisjobs)
    with subscribed(redisjobs, job_id) as pubsub:
        assert redisjobs.store.cancel(job_id, Q, NOW) is Cancelled.REQUESTED
        assert published(redisjobs, pubsub, job_id) == "sentinel"
    stored = fields(redisjobs, job_id)
    assert (stored["status"], stored["cancel_requested"]) == ("active", "1")
    assert members(redisjobs, "active") == [job_id]
    assert redisjobs.store.cancel_requested(job_id, Q)
    assert redisjobs.store.cancel(job_id, Q, NOW) is Cancelled.REQUESTED


@pytest.mark.parametrize("outcome", ["succeeded", "dead", "cancelled"])
def test_cancel_of_an_ended_job_changes_nothing(
    redisjobs: RedisJobs, outcome: str
) -> None:
    job_id = claimed(redisjobs)
    finish(redisjobs, job_id, outcome, ttl_ms=TTL_MS)
    before = fields(redisjobs, job_id)

    assert redisjobs.store.cancel(job_id, Q, NOW + 500) is Cancelled.ALREADY_FINISHED

    assert fields(redisjobs, job_id) == before


def test_cancel_of_a_missing_job_raises(redisjobs: RedisJobs) -> None:
    with pytest.raises(JobDoesNotExist, match="'nope' does not exist in queue"):
        redisjobs.store.cancel("nope", Q, NOW)


def test_cancel_releases_the_unique_lock_or_keeps_its_window(
    redisjobs: RedisJobs,
) -> None:
    plain = add(redisjobs, unique_key="plain")
    windowed = add(redisjobs, unique_key="win", unique_until_ms=NOW + 10 * HOUR_MS)

    redisjobs.store.cancel(plain, Q, NOW)
    redisjobs.store.cancel(windowed, Q, NOW)

    assert not redisjobs.client.exists(lock_key(redisjobs, "plain"))
    assert (
        redisjobs.client.pexpiretime(lock_key(redisjobs, "win")) == NOW + 10 * HOUR_MS
    )
    assert (
        redisjobs.client.pexpiretime(job_key(redisjobs, windowed)) == NOW + 10 * HOUR_MS
    )
    assert enqueue(redisjobs, make_job(unique_key="win")) == [Placed(windowed, False)]


def test_cancel_without_result_ttl_uses_the_settings_ttl(redisjobs: RedisJobs) -> None:
    job_id = add(redisjobs, result_ttl_ms=0)
    redisjobs.store.cancel(job_id, Q, NOW)
    assert 3_600_000 < redisjobs.client.pttl(job_key(redisjobs, job_id)) <= 86_400_000


# -- claim_jobs ---------------------------------------------------------------------


def test_claim_drops_a_cancelled_id_found_in_the_queue(redisjobs: RedisJobs) -> None:
    cancelled, waiting = add(redisjobs), add(redisjobs)
    redisjobs.store.cancel(cancelled, Q, NOW)
    # Put back by hand, as an older version or an operator might have left it.
    redisjobs.client.lpush(keys.ready(redisjobs.prefix, Q), cancelled)

    got = redisjobs.store.claim(Q, "w1", 1, NOW, LEASE_MS)
    assert got == []
    assert [c.id for c in redisjobs.store.claim(Q, "w1", 1, NOW, LEASE_MS)] == [waiting]
    assert fields(redisjobs, cancelled)["status"] == "cancelled"
    assert members(redisjobs, "active") == [waiting]


# -- priorities and at_front ----------------------------------------------------------


def test_at_front_score_stays_inside_its_priority_band() -> None:
    for priority in (-100, -1, 1, 50, 99):
        front = priority_score(priority, NOW, at_front=True)
        later_front = priority_score(priority, NOW + 1, at_front=True)
        assert priority_score(priority + 1, NOW) < later_front < front
        assert front < priority_score(priority, 0)


def test_claim_order_follows_priority_then_fifo_with_at_front_heads(
    redisjobs: RedisJobs,
) -> None:
    names: dict[str, str] = {}

    def put(name: str, priority: int, at_front: bool = False) -> None:
        job = make_job(priority=priority, enqueued_ms=NOW + len(names))
        enqueue(redisjobs, job, at_front=at_front)
        names[job.id] = name

    put("p0-a", 0)
    put("low-a", -5)
    put("p7-a", 7)
    put("p0-b", 0)
    put("p7-b", 7)
    put("min", -100)
    put("max", 100)
    put("p7-front-1", 7, at_front=True)
    put("p7-front-2", 7, at_front=True)
    put("p0-front", 0, at_front=True)
    put("low-b", -5)
    put("p3", 3)
    put("low-front", -5, at_front=True)

    order = []
    while got := redisjobs.store.claim(Q, "w1", 1, NOW + 100, LEASE_MS):
        order.append(names[got[0].id])

    assert order == [
        "max",
        "p7-front-2",
        "p7-front-1",
        "p7-a",
        "p7-b",
        "p3",
        "p0-front",
        "p0-a",
        "p0-b",
        "low-front",
        "low-a",
        "low-b",
        "min",
    ]


def test_at_front_is_ignored_for_a_delayed_job(redisjobs: RedisJobs) -> None:
    waiting = make_job(priority=4)
    delayed = make_job(priority=4, run_at_ms=NOW + 10, enqueued_ms=NOW + 1)
    enqueue(redisjobs, waiting)
    enqueue(redisjobs, delayed, now_ms=NOW + 1, at_front=True)
    redisjobs.store.promote_due(Q, NOW + 10, 10)
    assert members(redisjobs, "prioritized") == [waiting.id, delayed.id]
    assert fields(redisjobs, delayed.id)["score"] == str(priority_score(4, NOW + 1))
