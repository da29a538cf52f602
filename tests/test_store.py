"""`JobStore` beyond the scripts: batching, reads, listings, leases, workers, outages.

All against real Redis; time is injected through `now_ms`.
"""

from datetime import UTC, datetime

import pytest
import redis
from django.test import override_settings

from django_redisjobs import keys
from django_redisjobs.exceptions import JobDoesNotExist, RedisUnavailable
from django_redisjobs.job import Job, JobStatus, new_job_id, now_epoch_ms
from django_redisjobs.queue import (
    QUEUE_NAME_REFRESH_MS,
    Damaged,
    EnqueueRequest,
    JobState,
    JobStore,
    Outcome,
    WorkerInfo,
    get_store,
)
from tests.conftest import RedisJobs

NOW = 1_700_000_000_000
LEASE_MS = 30_000
RESULT_TTL_MS = 86_400_000  # the RESULT_TTL_S default
DEAD_TTL_MS = 7 * RESULT_TTL_MS  # the DEAD_TTL_S default
Q = "default"


# -- helpers ------------------------------------------------------------------


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def make_job(
    queue: str = Q, *, priority: int = 0, enqueued_ms: int = NOW, run_at_ms: int = 0
) -> Job:
    return Job(
        id=new_job_id(enqueued_ms),
        func="tests.jobs.add",
        queue=queue,
        args=[1, 2],
        priority=priority,
        max_attempts=3,
        enqueued_at=at(enqueued_ms),
        run_at=at(run_at_ms) if run_at_ms else None,
    )


def enqueue(store: JobStore, *jobs: Job, now_ms: int = NOW) -> list[bool]:
    requests = [EnqueueRequest(job, "[1, 2]", "{}") for job in jobs]
    return store.enqueue(requests, now_ms)


def add(rj: RedisJobs, count: int = 1, **options: int) -> list[str]:
    jobs = [make_job(**options) for _ in range(count)]
    assert enqueue(rj.store, *jobs) == [True] * count
    return [job.id for job in jobs]


def ids(claimed: list[Job | Damaged]) -> list[str]:
    assert all(isinstance(c, Job) for c in claimed), claimed
    return [c.id for c in claimed if isinstance(c, Job)]


def claim(rj: RedisJobs, limit: int = 10, now_ms: int = NOW) -> list[str]:
    return ids(rj.store.claim(Q, "w1", limit, now_ms, LEASE_MS))


def end(rj: RedisJobs, job_id: str, status: str, now_ms: int) -> None:
    """Claim `job_id` (it must be next) and end it with `status` at `now_ms`."""
    assert claim(rj, 1, now_ms) == [job_id]
    outcome = Outcome(job_id, Q, 1, status, ttl_ms=RESULT_TTL_MS)
    assert rj.store.finish([outcome], "w1", now_ms) == [1]


def active(rj: RedisJobs) -> dict[str, float]:
    return dict(rj.client.zrange(keys.active(rj.prefix, Q), 0, -1, withscores=True))


def page(rj: RedisJobs, state: JobState, offset: int = 0, limit: int = 100) -> list:
    return rj.store.list_ids(Q, state, offset, limit)


# -- enqueue and known queues ---------------------------------------------------


def test_known_queues_is_empty_before_any_enqueue(redisjobs: RedisJobs) -> None:
    assert redisjobs.store.known_queues() == []


def test_enqueue_across_two_queues_in_one_call_stores_each_in_its_queue(
    redisjobs: RedisJobs,
) -> None:
    a1, b1, a2 = make_job("a"), make_job("b"), make_job("a")
    assert enqueue(redisjobs.store, a1, b1, a2) == [True, True, True]
    p = redisjobs.prefix
    assert redisjobs.client.lrange(keys.ready(p, "a"), 0, -1) == [a1.id, a2.id]
    assert redisjobs.client.lrange(keys.ready(p, "b"), 0, -1) == [b1.id]
    assert redisjobs.store.known_queues() == ["a", "b"]


def test_enqueue_across_queues_reports_duplicates_at_their_positions(
    redisjobs: RedisJobs,
) -> None:
    a1, b1 = make_job("a"), make_job("b")
    enqueue(redisjobs.store, a1)
    assert enqueue(redisjobs.store, b1, a1, make_job("c")) == [True, False, True]
    assert redisjobs.store.known_queues() == ["a", "b", "c"]


def test_enqueue_to_a_known_queue_stores_and_reports_duplicates(
    redisjobs: RedisJobs,
) -> None:
    first = make_job()
    enqueue(redisjobs.store, first)
    second = make_job()
    assert enqueue(redisjobs.store, second, first) == [True, False]
    assert redisjobs.store.known_queues() == [Q]


def test_enqueue_of_nothing_stores_nothing(redisjobs: RedisJobs) -> None:
    assert enqueue(redisjobs.store) == []
    assert redisjobs.store.known_queues() == []


def test_queue_is_known_again_after_redis_lost_its_data(
    make_redis_server, redisjobs: RedisJobs
) -> None:
    server = make_redis_server()
    settings = {**redisjobs.settings, "REDIS_URL": server.url}
    with override_settings(REDISJOBS=settings):
        store = get_store()
        enqueue(store, make_job())
        server.restart()  # persistence is off: every key is gone
        soon = make_job()
        enqueue(store, soon, now_ms=NOW + 1)
        # The name is resent at most every QUEUE_NAME_REFRESH_MS, not per job.
        assert store.known_queues() == []
        later = make_job()
        enqueue(store, later, now_ms=NOW + QUEUE_NAME_REFRESH_MS)
        assert store.known_queues() == [Q]
        assert store.locate(later.id) == Q


def test_add_known_queues_records_worker_queues(redisjobs: RedisJobs) -> None:
    redisjobs.store.add_known_queues(["mail", "default"])
    redisjobs.store.add_known_queues(["mail"])
    assert redisjobs.store.known_queues() == ["default", "mail"]


def _calls(rj: RedisJobs) -> dict[str, int]:
    stats = rj.client.info("commandstats")
    return {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()}


def test_enqueue_and_finish_send_no_script_exists_round_trip(
    redisjobs: RedisJobs,
) -> None:
    (warm_id,) = add(redisjobs)
    end(redisjobs, warm_id, "succeeded", NOW)  # every script is loaded by now
    before = _calls(redisjobs)
    (job_id,) = add(redisjobs)
    end(redisjobs, job_id, "succeeded", NOW)
    after = _calls(redisjobs)
    # One EVALSHA each for enqueue, claim and finish; redis-py's pipeline would
    # add a SCRIPT EXISTS round trip before enqueue and finish.
    assert after["evalsha"] - before["evalsha"] == 3
    assert after.get("script|exists", 0) == before.get("script|exists", 0)


def test_pipelined_scripts_run_again_after_the_server_forgets_them(
    redisjobs: RedisJobs,
) -> None:
    (first,) = add(redisjobs)
    assert claim(redisjobs) == [first]
    redisjobs.client.script_flush()
    outcome = Outcome(first, Q, 1, "succeeded", ttl_ms=RESULT_TTL_MS)
    assert redisjobs.store.finish([outcome], "w1", NOW) == [1]
    redisjobs.client.script_flush()
    (second,) = add(redisjobs)
    assert claim(redisjobs) == [second]
    assert redisjobs.store.get(first, Q).status is JobStatus.SUCCEEDED


def test_pipelined_script_errors_other_than_noscript_are_raised(
    redisjobs: RedisJobs,
) -> None:
    store = redisjobs.store
    with store.client.pipeline(transaction=False) as pipe:
        store.scripts.queue_in(pipe, "claim_jobs", ["a"], [])  # too few keys
        with pytest.raises(redis.ResponseError):
            store.scripts.execute(pipe)


# -- get, get_many, locate ----------------------------------------------------


def test_get_returns_the_stored_job(redisjobs: RedisJobs) -> None:
    job = make_job(priority=3, run_at_ms=NOW + 1_000)
    enqueue(redisjobs.store, job)
    found = redisjobs.store.get(job.id, Q)
    assert (found.id, found.func, found.queue) == (job.id, "tests.jobs.add", Q)
    assert (found.args, found.kwargs) == ([1, 2], {})
    assert found.status is JobStatus.SCHEDULED
    assert found.priority == 3
    assert found.enqueued_at == at(NOW)
    assert found.run_at == at(NOW + 1_000)
    assert found.attempts == 0


def test_get_of_missing_id_raises_job_does_not_exist(redisjobs: RedisJobs) -> None:
    with pytest.raises(JobDoesNotExist, match=r"Job 'nope' does not exist in queue"):
        redisjobs.store.get("nope", Q)


def test_get_many_keeps_order_and_gives_none_for_missing_ids(
    redisjobs: RedisJobs,
) -> None:
    first, second = add(redisjobs, 2)
    jobs = redisjobs.store.get_many([second, "missing", first], Q)
    assert [job.id if job else None for job in jobs] == [second, None, first]


def test_locate_finds_the_queue_that_holds_the_job(redisjobs: RedisJobs) -> None:
    job = make_job("other")
    enqueue(redisjobs.store, make_job("a"), job)
    assert redisjobs.store.locate(job.id) == "other"


def test_locate_of_missing_id_raises_job_does_not_exist(
    redisjobs: RedisJobs,
) -> None:
    add(redisjobs)
    with pytest.raises(JobDoesNotExist, match=r"Job 'nope' does not exist in any"):
        redisjobs.store.locate("nope")


# -- counts and listings ------------------------------------------------------


def _one_in_each_state(rj: RedisJobs) -> None:
    """Two queued (list and prioritized), then one in every other state."""
    done, dead, cancelled, running, _listed = add(rj, 5)
    end(rj, done, "succeeded", NOW)
    end(rj, dead, "dead", NOW)
    end(rj, cancelled, "cancelled", NOW)
    assert claim(rj, 1) == [running]
    add(rj, priority=2)
    add(rj, run_at_ms=NOW + 1_000)


def test_counts_reports_each_state(redisjobs: RedisJobs) -> None:
    _one_in_each_state(redisjobs)
    assert redisjobs.store.counts(Q) == {
        JobState.QUEUED: 2,
        JobState.SCHEDULED: 1,
        JobState.ACTIVE: 1,
        JobState.SUCCEEDED: 1,
        JobState.DEAD: 1,
        JobState.CANCELLED: 1,
    }


def test_counts_of_an_unused_queue_are_zero(redisjobs: RedisJobs) -> None:
    assert set(redisjobs.store.counts("empty").values()) == {0}


def test_list_queued_shows_ids_in_claim_order(redisjobs: RedisJobs) -> None:
    (low,) = add(redisjobs, priority=-5)
    first, second = add(redisjobs, 2)
    (high,) = add(redisjobs, priority=5)
    listed = page(redisjobs, JobState.QUEUED)
    assert listed == [high, first, second, low]
    assert listed == claim(redisjobs)


def test_list_queued_pages_across_high_priority_list_and_low_priority(
    redisjobs: RedisJobs,
) -> None:
    high = [add(redisjobs, priority=5, enqueued_ms=NOW + i)[0] for i in range(3)]
    listed = add(redisjobs, 3)
    low = [add(redisjobs, priority=-5, enqueued_ms=NOW + i)[0] for i in range(2)]
    everything = high + listed + low
    for offset in range(len(everything) + 1):
        for limit in (1, 2, 4, 10):
            expected = everything[offset : offset + limit]
            assert page(redisjobs, JobState.QUEUED, offset, limit) == expected


def test_list_scheduled_is_ordered_by_due_time(redisjobs: RedisJobs) -> None:
    late = add(redisjobs, run_at_ms=NOW + 20)
    early = add(redisjobs, run_at_ms=NOW + 10)
    assert page(redisjobs, JobState.SCHEDULED) == early + late
    assert page(redisjobs, JobState.SCHEDULED, 1, 5) == late


def test_list_active_is_ordered_by_lease_deadline(redisjobs: RedisJobs) -> None:
    first, second = add(redisjobs, 2)
    claim(redisjobs, 1, NOW + 5)
    claim(redisjobs, 1, NOW)
    assert page(redisjobs, JobState.ACTIVE) == [second, first]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("succeeded", JobState.SUCCEEDED),
        ("dead", JobState.DEAD),
        ("cancelled", JobState.CANCELLED),
    ],
)
def test_list_ended_jobs_shows_newest_first_with_offset_and_limit(
    redisjobs: RedisJobs, status: str, state: JobState
) -> None:
    ids = add(redisjobs, 4)
    for n, job_id in enumerate(ids):
        end(redisjobs, job_id, status, NOW + n)
    newest_first = ids[::-1]
    assert page(redisjobs, state) == newest_first
    assert page(redisjobs, state, 1, 2) == newest_first[1:3]
    assert page(redisjobs, state, 3, 5) == newest_first[3:]
    assert page(redisjobs, state, 4, 5) == []


def test_list_with_limit_0_returns_an_empty_page_in_every_state(
    redisjobs: RedisJobs,
) -> None:
    _one_in_each_state(redisjobs)
    pages = {state: page(redisjobs, state, 0, 0) for state in JobState}
    assert pages == dict.fromkeys(JobState, [])


# -- leases, trimming ---------------------------------------------------------


def test_renew_leases_pushes_deadlines_only_for_ids_still_active(
    redisjobs: RedisJobs,
) -> None:
    held, recovered = add(redisjobs, 2)
    claim(redisjobs, 1, NOW + 10_000)
    claim(redisjobs, 1, NOW)
    redisjobs.store.recover_expired(Q, NOW + LEASE_MS + 1, 10)
    assert active(redisjobs) == {held: NOW + 10_000 + LEASE_MS}
    redisjobs.store.renew_leases({Q: [held, recovered], "other": []}, NOW + 99_000)
    assert active(redisjobs) == {held: NOW + 99_000}


def test_renew_leases_of_nothing_is_a_no_op(redisjobs: RedisJobs) -> None:
    redisjobs.store.renew_leases({}, NOW)
    assert active(redisjobs) == {}


def test_trim_finished_drops_ids_older_than_result_and_dead_ttls(
    redisjobs: RedisJobs,
) -> None:
    old_ok, new_ok, old_cancel, old_dead = add(redisjobs, 4)
    end(redisjobs, old_ok, "succeeded", NOW)
    end(redisjobs, new_ok, "succeeded", NOW + 1_000)
    end(redisjobs, old_cancel, "cancelled", NOW)
    end(redisjobs, old_dead, "dead", NOW)
    redisjobs.store.trim_finished(Q, NOW + RESULT_TTL_MS + 500)
    assert page(redisjobs, JobState.SUCCEEDED) == [new_ok]
    assert page(redisjobs, JobState.CANCELLED) == []
    assert page(redisjobs, JobState.DEAD) == [old_dead]
    redisjobs.store.trim_finished(Q, NOW + DEAD_TTL_MS)
    assert page(redisjobs, JobState.DEAD) == []


# -- workers ------------------------------------------------------------------


def _worker_info() -> WorkerInfo:
    return WorkerInfo("host:42", "host", 42, ("default", "mail"), 4, NOW)


def test_heartbeat_writes_worker_hash_and_workers_entry_with_expiry(
    redisjobs: RedisJobs,
) -> None:
    # PEXPIREAT is absolute, so the expiry must lie ahead of the server's clock.
    expires_ms = now_epoch_ms() + 60_000
    redisjobs.store.heartbeat(_worker_info(), expires_ms, {"processed": 7})
    worker_key = keys.worker(redisjobs.prefix, "host:42")
    assert redisjobs.client.hgetall(worker_key) == {
        "hostname": "host",
        "pid": "42",
        "queues": "default,mail",
        "concurrency": "4",
        "started_ms": str(NOW),
        "expires_ms": str(expires_ms),
        "processed": "7",
    }
    assert redisjobs.client.pexpiretime(worker_key) == expires_ms
    workers = redisjobs.client.zrange(
        keys.workers(redisjobs.prefix), 0, -1, withscores=True
    )
    assert workers == [("host:42", expires_ms)]


def test_unregister_worker_removes_hash_and_workers_entry(
    redisjobs: RedisJobs,
) -> None:
    redisjobs.store.heartbeat(_worker_info(), now_epoch_ms() + 60_000, {})
    redisjobs.store.unregister_worker("host:42")
    assert not redisjobs.client.exists(keys.worker(redisjobs.prefix, "host:42"))
    assert redisjobs.client.zcard(keys.workers(redisjobs.prefix)) == 0


# -- other worker-side calls ----------------------------------------------------


def test_wait_then_claim_wakes_on_any_queue_and_consumes_its_marker(
    redisjobs: RedisJobs,
) -> None:
    add(redisjobs)
    # Woken by Q's marker; the claim in the same round trip is of "other", the
    # first queue, so Q's job comes with the worker's next claim.
    claimed = redisjobs.store.wait_then_claim(["other", Q], 1.0, "w1", 10, NOW, 60_000)
    assert claimed == []
    assert not redisjobs.client.exists(keys.marker(redisjobs.prefix, Q))


def test_set_progress_stores_the_fraction_while_the_attempt_holds_the_lease(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = add(redisjobs)
    assert not redisjobs.store.set_progress(job_id, Q, ("w1", 1), 0.1)  # queued
    redisjobs.store.claim(Q, "w1", 1, NOW, 60_000)
    assert not redisjobs.store.set_progress(job_id, Q, ("w2", 1), 0.1)  # not its
    assert not redisjobs.store.set_progress(job_id, Q, ("w1", 2), 0.1)  # old try
    assert redisjobs.store.set_progress(job_id, Q, ("w1", 1), 0.25, "a quarter")
    job = redisjobs.store.get(job_id, Q)
    assert (job.progress, job.progress_message) == (0.25, "a quarter")


def test_set_progress_never_makes_a_gone_hash_again(redisjobs: RedisJobs) -> None:
    (job_id,) = add(redisjobs)
    redisjobs.store.claim(Q, "w1", 1, NOW, 60_000)
    redisjobs.client.delete(keys.job(redisjobs.prefix, Q, job_id))
    assert not redisjobs.store.set_progress(job_id, Q, ("w1", 1), 0.5)
    assert not redisjobs.client.exists(keys.job(redisjobs.prefix, Q, job_id))


def test_end_channel_is_the_channel_the_scripts_publish_on(
    redisjobs: RedisJobs,
) -> None:
    channel = redisjobs.store.end_channel("abc", Q)
    assert channel == keys.job_channel_prefix(redisjobs.prefix, Q) + "abc"


# -- Redis outage -------------------------------------------------------------


@pytest.fixture
def dead_redis_store(make_redis_server, redisjobs: RedisJobs):
    """A store whose private Redis answered once and was then killed."""
    server = make_redis_server()
    settings = {**redisjobs.settings, "REDIS_URL": server.url, "PREFIX": "x"}
    with override_settings(REDISJOBS=settings):
        store = get_store()
        assert store.known_queues() == []
        server.kill()
        yield store


def test_enqueue_raises_redis_unavailable_when_redis_is_down(
    dead_redis_store: JobStore,
) -> None:
    with pytest.raises(RedisUnavailable, match=r"Could not store 1 job\(s\)"):
        enqueue(dead_redis_store, make_job())


def test_enqueue_to_a_known_queue_raises_redis_unavailable_when_redis_is_down(
    make_redis_server, redisjobs: RedisJobs
) -> None:
    server = make_redis_server()
    settings = {**redisjobs.settings, "REDIS_URL": server.url, "PREFIX": "x"}
    with override_settings(REDISJOBS=settings):
        store = get_store()
        enqueue(store, make_job())
        server.kill()
        with pytest.raises(RedisUnavailable, match=r"Could not store 1 job\(s\)"):
            enqueue(store, make_job())


def test_get_raises_redis_unavailable_when_redis_is_down(
    dead_redis_store: JobStore,
) -> None:
    with pytest.raises(RedisUnavailable, match=r"Could not read from Redis"):
        dead_redis_store.get("abc", Q)


def test_reads_raise_redis_unavailable_when_redis_is_down(
    dead_redis_store: JobStore,
) -> None:
    for read in (
        lambda: dead_redis_store.get_many(["abc"], Q),
        lambda: dead_redis_store.counts(Q),
        lambda: dead_redis_store.list_ids(Q, JobState.SUCCEEDED, 0, 10),
        lambda: dead_redis_store.known_queues(),
    ):
        with pytest.raises(RedisUnavailable):
            read()


def test_wait_then_claim_claims_a_job_enqueued_during_the_wait(
    redisjobs: RedisJobs,
) -> None:
    import threading

    store = redisjobs.store
    before_wait = now_epoch_ms() - 5_000  # a wait's start, read well before the job
    job = make_job(enqueued_ms=now_epoch_ms())
    late = threading.Timer(0.05, lambda: enqueue(store, job, now_ms=now_epoch_ms()))
    late.start()
    try:
        claimed = store.wait_then_claim([Q], 5.0, "w1", 10, before_wait, LEASE_MS)
    finally:
        late.join()

    assert ids(claimed) == [job.id]
    (got,) = claimed
    assert isinstance(got, Job)
    # The claim ran after the wait: started_at is not the stale pre-wait time.
    assert got.started_at is not None and got.enqueued_at is not None
    assert got.started_at >= got.enqueued_at
    assert got.status is JobStatus.ACTIVE


def test_wait_then_claim_returns_nothing_when_the_wait_times_out(
    redisjobs: RedisJobs,
) -> None:
    assert redisjobs.store.wait_then_claim([Q], 0.01, "w1", 10, NOW, LEASE_MS) == []


def test_wait_then_claim_loads_its_script_again_after_a_script_flush(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = add(redisjobs)
    redisjobs.client.script_flush()
    claimed = redisjobs.store.wait_then_claim([Q], 1.0, "w1", 10, NOW, LEASE_MS)
    assert ids(claimed) == [job_id]


def test_wait_then_claim_raises_a_script_error_and_keeps_its_connection_usable(
    redisjobs: RedisJobs,
) -> None:
    scripts = redisjobs.store.scripts
    with pytest.raises(redis.ResponseError):
        scripts.run_after(("BZPOPMIN", "m", 0.01), "claim_jobs", ["a"], [])
    (job_id,) = add(redisjobs)
    assert claim(redisjobs) == [job_id]
