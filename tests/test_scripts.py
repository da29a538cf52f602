"""Every Lua script against the suite's real Redis, through `Scripts` and `JobStore`.

Time is injected: each call gets its `now_ms`, so nothing here sleeps.
"""

import contextlib
import dataclasses
import hashlib
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
import redis
from django.test import override_settings
from redis.client import PubSub
from redis.crc import key_slot
from redis.exceptions import ResponseError

from django_redisjobs import keys
from django_redisjobs.exceptions import JobDoesNotExist, RedisUnavailable
from django_redisjobs.job import (
    DEFAULT_PRIORITY_BOUND,
    ENQUEUE_FIELDS,
    Job,
    JobError,
    JobStatus,
    new_job_id,
    priority_score,
)
from django_redisjobs.queue import WORKER_LOST, Cancelled, EnqueueRequest, Outcome
from django_redisjobs.queue.claims import claim_jobs_keys, finish_jobs_keys
from django_redisjobs.scripts import (
    PRELUDE,
    SCRIPT_NAMES,
    Claimed,
    Recovered,
    load_file,
    load_source,
)
from tests.conftest import RedisJobs
from tests.servers import RedisServer

NOW = 1_700_000_000_000
LEASE_MS = 30_000
TTL_MS = 60_000
DEAD_TTL_MS = 7 * 24 * 3600 * 1000  # the DEAD_TTL_S default
FUNC = "tests.jobs.add"
Q = "default"


# -- helpers ------------------------------------------------------------------


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def make_job(
    queue: str = Q,
    *,
    priority: int = 0,
    enqueued_ms: int = NOW,
    run_at_ms: int = 0,
    max_attempts: int = 3,
) -> Job:
    return Job(
        id=new_job_id(enqueued_ms),
        func=FUNC,
        queue=queue,
        priority=priority,
        max_attempts=max_attempts,
        enqueued_at=at(enqueued_ms),
        run_at=at(run_at_ms) if run_at_ms else None,
    )


def enqueue(
    rj: RedisJobs, *jobs: Job, now_ms: int = NOW, at_front: bool = False
) -> list[bool]:
    requests = [EnqueueRequest(job, "[1, 2]", '{"x": 3}', at_front) for job in jobs]
    return rj.store.enqueue(requests, now_ms)


def add(rj: RedisJobs, count: int = 1, **options: int) -> list[str]:
    """Enqueue `count` jobs on the default queue; their ids in order."""
    jobs = [make_job(**options) for _ in range(count)]
    assert enqueue(rj, *jobs) == [True] * count
    return [job.id for job in jobs]


def key(rj: RedisJobs, kind: str, queue: str = Q) -> str:
    return getattr(keys, kind)(rj.prefix, queue)


def job_key(rj: RedisJobs, job_id: str, queue: str = Q) -> str:
    return keys.job(rj.prefix, queue, job_id)


def stored(rj: RedisJobs, job_id: str, queue: str = Q) -> dict[str, str]:
    return rj.client.hgetall(job_key(rj, job_id, queue))


def ready(rj: RedisJobs, queue: str = Q) -> list[str]:
    return rj.client.lrange(key(rj, "ready", queue), 0, -1)


def zset(rj: RedisJobs, kind: str, queue: str = Q) -> list[tuple[str, float]]:
    return rj.client.zrange(key(rj, kind, queue), 0, -1, withscores=True)


def has_marker(rj: RedisJobs, queue: str = Q) -> bool:
    return bool(rj.client.exists(key(rj, "marker", queue)))


def claim(
    rj: RedisJobs, limit: int = 10, *, now_ms: int = NOW, worker: str = "w1"
) -> list[Claimed]:
    """The script's own reply (`JobStore.claim` turns it into Jobs)."""
    return rj.store.scripts.claim_jobs(
        claim_jobs_keys(rj.prefix, Q),
        [now_ms, now_ms + LEASE_MS, worker, limit, DEFAULT_PRIORITY_BOUND],
    )


def claim_ids(rj: RedisJobs, limit: int = 10, **options: int | str) -> list[str]:
    return [c.job_id for c in claim(rj, limit, **options)]


def finish(
    rj: RedisJobs,
    job_id: str,
    status: str,
    *,
    attempt: int = 1,
    worker: str = "w1",
    now_ms: int = NOW + 100,
    **outcome: object,
) -> int:
    result = Outcome(job_id, Q, attempt, status, **outcome)
    (code,) = rj.store.finish([result], worker, now_ms)
    return code


def recover(rj: RedisJobs, now_ms: int, limit: int = 10) -> Recovered:
    return rj.store.recover_expired(Q, now_ms, limit)


@contextlib.contextmanager
def subscribed(rj: RedisJobs, job_id: str) -> Iterator[PubSub]:
    """A pubsub on the job's end channel, subscribed before anything happens."""
    with rj.client.pubsub() as pubsub:
        pubsub.subscribe(keys.job_channel(rj.prefix, Q, job_id))
        confirmation = pubsub.get_message(timeout=5)
        assert confirmation is not None
        assert confirmation["type"] == "subscribe"
        yield pubsub


def next_published(rj: RedisJobs, pubsub: PubSub, job_id: str) -> str:
    """The next message on the job's channel.

    A sentinel is published after the script ran; Redis delivers one channel's
    messages in order, so the sentinel coming first proves nothing was published.
    """
    channel = keys.job_channel(rj.prefix, Q, job_id)
    rj.client.publish(channel, "sentinel")
    message = pubsub.get_message(timeout=5)
    assert message is not None
    assert message["channel"] == channel
    return message["data"]


# -- loading ------------------------------------------------------------------


def test_every_lua_file_in_the_package_is_a_wrapped_script_or_the_prelude() -> None:
    shipped = {
        entry.name.removesuffix(".lua")
        for entry in (resources.files("django_redisjobs") / "lua").iterdir()
        if entry.name.endswith(".lua")
    }
    assert shipped == {*SCRIPT_NAMES, PRELUDE}


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_script_loads_through_importlib_resources_and_redis_accepts_it(
    redisjobs: RedisJobs, name: str
) -> None:
    source = load_source(name)
    assert source == load_file(PRELUDE) + load_file(name)
    assert load_file(name).startswith(f"-- {name}.lua: ")
    sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
    assert redisjobs.client.script_load(source) == sha
    assert redisjobs.client.script_exists(sha) == [True]


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_script_sha_is_stable_for_the_same_text(
    redisjobs: RedisJobs, name: str
) -> None:
    first = redisjobs.client.register_script(load_source(name))
    second = redisjobs.client.register_script(load_source(name))
    assert first.sha == second.sha == redisjobs.client.script_load(load_source(name))


def _header_and_body(text: str) -> tuple[str, str]:
    lines = text.splitlines()
    header_end = next(i for i, line in enumerate(lines) if not line.startswith("--"))
    return "\n".join(lines[:header_end]), "\n".join(lines[header_end:])


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_script_header_states_purpose_keys_argv_return_and_failures(
    name: str,
) -> None:
    header, body = _header_and_body(load_file(name))
    purpose = header.splitlines()[0].removeprefix(f"-- {name}.lua: ")
    assert len(purpose) > 20, f"{name}: the first line states no purpose"
    for kind in ("KEYS", "ARGV"):
        used = set(re.findall(rf"{kind}\[(\d+)\]", body))
        documented = set(re.findall(rf"^-- {kind}\[(\d+)\]", header, re.M))
        assert used <= documented, f"{name}: undocumented {kind} {used - documented}"
        if kind == "KEYS":
            assert documented <= used, f"{name}: unused KEYS {documented - used}"
    sections = re.split(r"^-- (?=Returns|Fails:)", header, flags=re.M)
    returns = [part for part in sections if part.startswith("Returns")]
    fails = [part for part in sections if part.startswith("Fails:")]
    assert returns, f"{name}: no Returns section"
    assert fails, f"{name}: no Fails: section"
    # The failure section names what can fail and what state it leaves.
    (failures,) = fails
    assert len(failures.split()) > 15, f"{name}: the Fails: section says too little"
    assert header.index("Returns") < header.index("Fails:")


def test_prelude_helpers_read_no_keys_or_argv_and_define_no_globals() -> None:
    header, body = _header_and_body(load_file(PRELUDE))
    assert header.startswith(f"-- {PRELUDE}.lua: ")
    assert not re.search(r"\b(KEYS|ARGV)\b", body)
    # Redis refuses a script that sets a global; every helper is local.
    assert not re.search(r"^function ", body, re.M)


def test_no_script_defines_what_the_prelude_defines() -> None:
    helpers = re.findall(r"^local function (\w+)", load_file(PRELUDE), re.M)
    assert {"push_ready", "release_unique"} <= set(helpers)
    for name in SCRIPT_NAMES:
        defined = re.findall(r"local function (\w+)", load_file(name))
        assert not set(defined) & set(helpers), name


def test_a_script_error_names_the_script_file_and_its_line(
    redisjobs: RedisJobs,
) -> None:
    p = redisjobs.prefix
    redisjobs.client.set(key(redisjobs, "ready"), "not a list")
    with pytest.raises(ResponseError, match="WRONGTYPE") as raised:
        redisjobs.store.scripts.claim_jobs(
            [key(redisjobs, k) for k in ("ready", "prioritized", "active", "marker")]
            + [keys.job_prefix(p, Q), keys.paused(p, Q)],
            [NOW, NOW + LEASE_MS, "w1", 10, DEFAULT_PRIORITY_BOUND],
        )
    match = re.search(r"\(claim_jobs\.lua line (\d+)\)$", str(raised.value))
    assert match is not None, str(raised.value)
    failed_line = load_file("claim_jobs").splitlines()[int(match[1]) - 1]
    assert "KEYS[1]" in failed_line


def test_wrappers_run_again_after_the_server_forgets_its_scripts(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = add(redisjobs)
    redisjobs.client.script_flush()
    assert claim_ids(redisjobs) == [job_id]


# -- key layout -----------------------------------------------------------------


def _queue_keys(prefix: str, queue: str) -> list[str]:
    """Every key keys.py builds for one queue, whatever functions it gains."""
    built = []
    for name, func in inspect.getmembers(keys, inspect.isfunction):
        params = list(inspect.signature(func).parameters)
        if name.startswith("_") or params[:2] != ["prefix", "queue"]:
            continue
        extra = ["0123456789abcdef0123456789abcdef"] * (len(params) - 2)
        built.append(func(prefix, queue, *extra))
    return built


@pytest.mark.parametrize(
    ("prefix", "queue"), [("redisjobs", "default"), ("a.b-c_1", "emails.high")]
)
def test_every_key_of_a_queue_shares_one_cluster_hash_slot(
    prefix: str, queue: str
) -> None:
    queue_keys = _queue_keys(prefix, queue)
    assert len(queue_keys) >= 12
    slots = {key_slot(k.encode()) for k in queue_keys}
    assert slots == {key_slot(keys.ready(prefix, queue).encode())}


def test_job_key_is_the_job_prefix_plus_the_id_as_the_scripts_build_it() -> None:
    assert keys.job("p", "q", "abc") == keys.job_prefix("p", "q") + "abc"
    assert (
        keys.job_channel("p", "q", "abc") == keys.job_channel_prefix("p", "q") + "abc"
    )


# -- enqueue_jobs -------------------------------------------------------------


def test_enqueue_stores_a_plain_job_without_its_default_fields(
    redisjobs: RedisJobs,
) -> None:
    job = make_job(max_attempts=4)
    assert enqueue(redisjobs, job) == [True]
    assert stored(redisjobs, job.id) == {
        "id": job.id,
        "func": FUNC,
        "queue": Q,
        "args": "[1, 2]",
        "kwargs": '{"x": 3}',
        "max_attempts": "4",
        "enqueued_ms": str(NOW),
        "status": "queued",
    }
    assert redisjobs.store.get(job.id, Q) == dataclasses.replace(
        job, args=[1, 2], kwargs={"x": 3}
    )
    assert ready(redisjobs) == [job.id]


def test_enqueue_stores_every_field_a_job_sets(redisjobs: RedisJobs) -> None:
    job = dataclasses.replace(
        make_job(priority=5, run_at_ms=NOW + 5_000),
        timeout=timedelta(seconds=2),
        result_ttl=timedelta(seconds=60),
        unique_key="k",
        unique_until=at(NOW + 9_000),
    )
    assert enqueue(redisjobs, job) == [True]
    fields = stored(redisjobs, job.id)
    assert set(fields) == {*ENQUEUE_FIELDS, "status"}
    assert fields["score"] == str(priority_score(5, NOW))
    assert redisjobs.store.get(job.id, Q) == dataclasses.replace(
        job, args=[1, 2], kwargs={"x": 3}, status=JobStatus.SCHEDULED
    )


def test_one_call_mixing_plain_and_full_jobs_reads_each_back_as_sent(
    redisjobs: RedisJobs,
) -> None:
    plain = make_job()
    full = dataclasses.replace(
        make_job(priority=-3), timeout=timedelta(seconds=1), unique_key="u"
    )
    assert enqueue(redisjobs, plain, full) == [True, True]
    for job in (plain, full):
        assert redisjobs.store.get(job.id, Q) == dataclasses.replace(
            job, args=[1, 2], kwargs={"x": 3}
        )
    assert ready(redisjobs) == [plain.id]
    assert zset(redisjobs, "prioritized") == [(full.id, priority_score(-3, NOW))]


def test_plain_job_sent_with_a_delayed_unique_one_reads_back_without_times(
    redisjobs: RedisJobs,
) -> None:
    plain = make_job()
    timed = dataclasses.replace(
        make_job(run_at_ms=NOW + 5_000), unique_key="t", unique_until=at(NOW + 9_000)
    )
    assert enqueue(redisjobs, plain, timed) == [True, True]
    # The call carries run_at_ms and unique_until_ms for both; 0 means unset.
    assert stored(redisjobs, plain.id)["run_at_ms"] == "0"
    got = redisjobs.store.get(plain.id, Q)
    assert (got.run_at, got.unique_until) == (None, None)
    assert redisjobs.store.get(timed.id, Q).run_at == at(NOW + 5_000)


def test_enqueue_with_future_run_at_goes_to_scheduled_zset_not_ready(
    redisjobs: RedisJobs,
) -> None:
    job = make_job(run_at_ms=NOW + 5_000)
    assert enqueue(redisjobs, job) == [True]
    assert stored(redisjobs, job.id)["status"] == "scheduled"
    assert zset(redisjobs, "scheduled") == [(job.id, NOW + 5_000)]
    assert ready(redisjobs) == []
    assert not has_marker(redisjobs)


def test_enqueue_with_run_at_equal_to_now_is_ready_at_once(
    redisjobs: RedisJobs,
) -> None:
    job = make_job(run_at_ms=NOW)
    enqueue(redisjobs, job)
    assert stored(redisjobs, job.id)["status"] == "queued"
    assert ready(redisjobs) == [job.id]
    assert zset(redisjobs, "scheduled") == []


def test_enqueue_appends_to_ready_list_and_at_front_pushes_to_its_head(
    redisjobs: RedisJobs,
) -> None:
    first, second = add(redisjobs, 2)
    urgent = make_job()
    enqueue(redisjobs, urgent, at_front=True)
    assert ready(redisjobs) == [urgent.id, first, second]


def test_enqueue_non_default_priority_goes_to_prioritized_zset_with_its_score(
    redisjobs: RedisJobs,
) -> None:
    high, low = make_job(priority=7), make_job(priority=-3, enqueued_ms=NOW + 1)
    enqueue(redisjobs, high, low)
    assert zset(redisjobs, "prioritized") == [
        (high.id, priority_score(7, NOW)),
        (low.id, priority_score(-3, NOW + 1)),
    ]
    assert stored(redisjobs, high.id)["score"] == str(priority_score(7, NOW))
    assert ready(redisjobs) == []


def test_enqueue_at_front_does_not_bypass_the_priority_zset(
    redisjobs: RedisJobs,
) -> None:
    job = make_job(priority=2)
    enqueue(redisjobs, job, at_front=True)
    assert [m for m, _ in zset(redisjobs, "prioritized")] == [job.id]
    assert ready(redisjobs) == []


def test_enqueue_duplicate_id_returns_0_and_leaves_stored_job_unchanged(
    redisjobs: RedisJobs,
) -> None:
    job = make_job()
    enqueue(redisjobs, job)
    before = stored(redisjobs, job.id)
    replay = Job(id=job.id, func="tests.jobs.echo", queue=Q, enqueued_at=at(NOW + 9))
    requests = [EnqueueRequest(replay, "[9]", "{}", at_front=True)]
    assert redisjobs.store.enqueue(requests, NOW + 9) == [False]
    assert stored(redisjobs, job.id) == before
    assert ready(redisjobs) == [job.id]


def test_enqueue_sets_the_marker_for_ready_jobs(redisjobs: RedisJobs) -> None:
    assert not has_marker(redisjobs)
    add(redisjobs)
    assert zset(redisjobs, "marker") == [("ready", 0.0)]


def test_enqueue_stores_many_jobs_in_one_call_in_order(redisjobs: RedisJobs) -> None:
    jobs = [make_job() for _ in range(50)]
    assert enqueue(redisjobs, *jobs) == [True] * 50
    assert ready(redisjobs) == [job.id for job in jobs]


def test_enqueue_batch_reports_duplicates_per_job(redisjobs: RedisJobs) -> None:
    (known,) = add(redisjobs)
    fresh = make_job()
    again = Job(id=known, func=FUNC, queue=Q, enqueued_at=at(NOW))
    assert enqueue(redisjobs, fresh, again, fresh) == [True, False, False]
    assert ready(redisjobs) == [known, fresh.id]


def test_enqueue_jobs_wrapper_returns_one_code_per_job(redisjobs: RedisJobs) -> None:
    p = redisjobs.prefix
    script_keys = [
        keys.ready(p, Q),
        keys.prioritized(p, Q),
        keys.scheduled(p, Q),
        keys.marker(p, Q),
        keys.job_prefix(p, Q),
    ]
    args = [NOW, 3, "id", "score", "run_at_ms"]
    args += [0, "a", "", 0, 0, "b", "", NOW + 1, 0, "a", "", 0]
    codes = redisjobs.store.scripts.enqueue_jobs(script_keys, args)
    assert codes == [1, 2, 0]  # ready, scheduled, already known
    assert ready(redisjobs) == ["a"]
    assert zset(redisjobs, "scheduled") == [("b", NOW + 1)]


def test_enqueue_treats_damaged_keys_as_known_ids_or_free_locks(
    redisjobs: RedisJobs,
) -> None:
    taken, fresh = make_job(), dataclasses.replace(make_job(), unique_key="u")
    redisjobs.client.set(job_key(redisjobs, taken.id), "not a hash")
    redisjobs.client.rpush(keys.unique(redisjobs.prefix, Q, "u"), "not", "a lock")

    assert enqueue(redisjobs, taken, fresh) == [False, True]

    assert redisjobs.client.get(job_key(redisjobs, taken.id)) == "not a hash"
    assert redisjobs.client.get(keys.unique(redisjobs.prefix, Q, "u")) == fresh.id
    assert ready(redisjobs) == [fresh.id]


def test_enqueue_with_a_nan_score_makes_the_job_ready_at_the_default_priority(
    redisjobs: RedisJobs,
) -> None:
    p = redisjobs.prefix
    script_keys = [
        keys.ready(p, Q),
        keys.prioritized(p, Q),
        keys.scheduled(p, Q),
        keys.marker(p, Q),
        keys.job_prefix(p, Q),
    ]
    # Python never sends one; Redis would refuse it as a score.
    args = [NOW, 2, "id", "score", 0, "a", "nan", 0, "b", "7"]
    assert redisjobs.store.scripts.enqueue_jobs(script_keys, args) == [1, 1]
    assert ready(redisjobs) == ["a"]
    assert zset(redisjobs, "prioritized") == [("b", 7.0)]
    assert stored(redisjobs, "a")["status"] == "queued"


def test_enqueue_into_a_wrong_type_ready_key_stores_each_job_whole_or_not_at_all(
    redisjobs: RedisJobs,
) -> None:
    later, now = make_job(run_at_ms=NOW + 5_000), make_job()
    redisjobs.client.set(key(redisjobs, "ready"), "not a list")
    # Not an outage: the store lets Redis's error reply out as it is.
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        enqueue(redisjobs, later, now)
    assert stored(redisjobs, later.id)["status"] == "scheduled"
    assert zset(redisjobs, "scheduled") == [(later.id, NOW + 5_000)]
    assert stored(redisjobs, now.id) == {}


# -- claim_jobs ---------------------------------------------------------------


def test_claim_reply_is_the_hash_as_the_claim_left_it_on_a_later_attempt(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = add(redisjobs)
    claim(redisjobs)
    error = JobError("builtins.ValueError", "bad", "Traceback ...")
    assert finish(redisjobs, job_id, "retrying", due_ms=NOW + 200, error=error) == 1
    assert redisjobs.store.promote_due(Q, NOW + 200, 10) == (1, -1)
    (claimed,) = claim(redisjobs, now_ms=NOW + 300, worker="w8")
    fields = stored(redisjobs, job_id)
    assert claimed.fields == fields
    assert (fields["attempts"], fields["worker"]) == ("2", "w8")
    assert fields["started_ms"] == str(NOW + 300)
    assert fields["error_class"] == "builtins.ValueError"  # kept from attempt 1


def test_claim_moves_id_to_active_scored_by_lease_deadline(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = add(redisjobs)
    (claimed,) = claim(redisjobs, now_ms=NOW + 5, worker="w7")
    assert claimed.job_id == job_id
    assert zset(redisjobs, "active") == [(job_id, NOW + 5 + LEASE_MS)]
    assert ready(redisjobs) == []
    fields = stored(redisjobs, job_id)
    assert claimed.fields == fields
    assert fields["status"] == "active"
    assert fields["worker"] == "w7"
    assert fields["started_ms"] == str(NOW + 5)
    assert fields["attempts"] == "1"


def test_claim_increments_attempts_each_time_the_job_is_claimed(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = add(redisjobs)
    claim(redisjobs)
    assert finish(redisjobs, job_id, "retrying", due_ms=NOW + 200) == 1
    redisjobs.store.promote_due(Q, NOW + 200, 10)
    (claimed,) = claim(redisjobs, now_ms=NOW + 300)
    assert claimed.fields["attempts"] == "2"


def test_claim_respects_limit_and_takes_the_list_in_fifo_order(
    redisjobs: RedisJobs,
) -> None:
    ids = add(redisjobs, 5)
    assert claim_ids(redisjobs, 2) == ids[:2]
    assert ready(redisjobs) == ids[2:]
    assert {m for m, _ in zset(redisjobs, "active")} == set(ids[:2])


def test_claim_takes_higher_priority_before_default_list(
    redisjobs: RedisJobs,
) -> None:
    (listed,) = add(redisjobs)
    (high,) = add(redisjobs, priority=1, enqueued_ms=NOW + 10)
    assert claim_ids(redisjobs, 1) == [high]
    assert claim_ids(redisjobs, 1) == [listed]


def test_claim_takes_default_list_before_lower_priority(
    redisjobs: RedisJobs,
) -> None:
    (low,) = add(redisjobs, priority=-1)
    (listed,) = add(redisjobs, enqueued_ms=NOW + 10)
    assert claim_ids(redisjobs, 1) == [listed]
    assert claim_ids(redisjobs, 1) == [low]


def test_claim_orders_high_list_low_in_one_call(redisjobs: RedisJobs) -> None:
    (low,) = add(redisjobs, priority=-50)
    first, second = add(redisjobs, 2)
    (top,) = add(redisjobs, priority=100, enqueued_ms=NOW + 5)
    (mid,) = add(redisjobs, priority=3)
    assert claim_ids(redisjobs) == [top, mid, first, second, low]
    assert zset(redisjobs, "prioritized") == []


def test_claim_is_fifo_within_one_priority(redisjobs: RedisJobs) -> None:
    later = make_job(priority=5, enqueued_ms=NOW + 1)
    earlier = make_job(priority=5, enqueued_ms=NOW)
    enqueue(redisjobs, later, earlier)
    assert claim_ids(redisjobs) == [earlier.id, later.id]


def test_claim_bound_is_the_score_of_default_priority() -> None:
    assert priority_score(1, NOW) < DEFAULT_PRIORITY_BOUND < priority_score(-1, 0)


def test_claim_returns_empty_fields_for_an_id_whose_hash_is_gone(
    redisjobs: RedisJobs,
) -> None:
    gone, present = add(redisjobs, 2)
    redisjobs.client.delete(job_key(redisjobs, gone))
    claimed = claim(redisjobs)
    assert claimed[0] == Claimed(gone, {})
    assert claimed[1].job_id == present
    assert [m for m, _ in zset(redisjobs, "active")] == [present]
    assert not redisjobs.client.exists(job_key(redisjobs, gone))


def test_claim_on_empty_queue_returns_nothing_and_clears_marker(
    redisjobs: RedisJobs,
) -> None:
    redisjobs.client.zadd(key(redisjobs, "marker"), {"ready": 0})
    assert claim(redisjobs) == []
    assert not has_marker(redisjobs)


def test_claim_keeps_marker_while_jobs_remain_and_deletes_it_when_drained(
    redisjobs: RedisJobs,
) -> None:
    add(redisjobs, 2)
    claim(redisjobs, 1)
    assert has_marker(redisjobs)
    claim(redisjobs, 1)
    assert not has_marker(redisjobs)


def test_claim_keeps_marker_while_only_prioritized_jobs_remain(
    redisjobs: RedisJobs,
) -> None:
    add(redisjobs)
    add(redisjobs, priority=-1)
    claim(redisjobs, 1)
    assert has_marker(redisjobs)


def test_claim_with_corrupt_attempts_field_still_leases_the_job(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = add(redisjobs)
    redisjobs.client.hset(job_key(redisjobs, job_id), "attempts", "abc")
    (claimed,) = claim(redisjobs)
    assert claimed.fields["attempts"] == "1"
    assert stored(redisjobs, job_id)["status"] == "active"
    assert [m for m, _ in zset(redisjobs, "active")] == [job_id]


def test_claim_sets_aside_a_wrong_type_job_key_and_leases_the_jobs_around_it(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    first, damaged, second, odd = add(redisjobs, 4)
    (low,) = add(redisjobs, priority=-1)
    redisjobs.client.delete(job_key(redisjobs, damaged))
    redisjobs.client.rpush(job_key(redisjobs, damaged), "not", "a", "hash")
    redisjobs.client.hset(job_key(redisjobs, odd), "attempts", "nan")
    # A score Redis accepts (it refuses NaN): it ranks below every priority.
    redisjobs.client.zadd(key(redisjobs, "prioritized"), {low: float("inf")})

    with caplog.at_level(logging.WARNING, "django_redisjobs.scripts"):
        claimed = claim(redisjobs)

    assert [c.job_id for c in claimed] == [first, damaged, second, odd, low]
    assert claimed[1] == Claimed(damaged, {})
    assert claimed[3].fields["attempts"] == "1"
    assert {m for m, _ in zset(redisjobs, "active")} == {first, second, odd, low}
    for job_id in (first, second, odd, low):
        assert stored(redisjobs, job_id)["status"] == "active"
    assert ready(redisjobs) == [] and zset(redisjobs, "prioritized") == []
    # The damaged key is left for a person to look at, and said so.
    assert redisjobs.client.lrange(job_key(redisjobs, damaged), 0, -1) == [
        "not",
        "a",
        "hash",
    ]
    (record,) = caplog.records
    assert damaged in record.getMessage()
    assert "holds a list, not a hash" in record.getMessage()


def test_claim_with_a_wrong_type_active_key_fails_before_any_job_moves(
    redisjobs: RedisJobs,
) -> None:
    ids = add(redisjobs, 3)
    (high,) = add(redisjobs, priority=5)
    before = {job_id: stored(redisjobs, job_id) for job_id in [*ids, high]}
    redisjobs.client.set(key(redisjobs, "active"), "not a zset")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        claim(redisjobs)
    assert ready(redisjobs) == ids
    assert [m for m, _ in zset(redisjobs, "prioritized")] == [high]
    assert {job_id: stored(redisjobs, job_id) for job_id in [*ids, high]} == before


def test_claim_takes_an_id_listed_twice_once(redisjobs: RedisJobs) -> None:
    (job_id,) = add(redisjobs)
    redisjobs.client.rpush(key(redisjobs, "ready"), job_id)
    (claimed,) = claim(redisjobs)
    assert claimed.fields["attempts"] == "1"
    assert ready(redisjobs) == []
    assert not has_marker(redisjobs)


def test_claim_still_runs_when_redis_is_out_of_memory(
    make_redis_server: Callable[..., RedisServer], redisjobs: RedisJobs
) -> None:
    """Its pops free memory: Redis refuses a script's growing writes only until
    its first write, which for claim_jobs is a DEL."""
    server = make_redis_server(maxmemory_policy="noeviction")
    with override_settings(REDISJOBS={**redisjobs.settings, "REDIS_URL": server.url}):
        rj = dataclasses.replace(redisjobs, server=server)
        first, second = add(rj, 2)
        with server.client() as admin:
            admin.set("ballast", "x" * 2_000_000)
            admin.config_set("maxmemory", "1mb")  # below what the server holds
        with pytest.raises(RedisUnavailable, match="maxmemory"):
            add(rj)
        assert claim_ids(rj, 1) == [first]
        assert has_marker(rj)
        assert claim_ids(rj, 1) == [second]
        assert not has_marker(rj)


# -- finish_jobs --------------------------------------------------------------


def _claimed(rj: RedisJobs, **options: int) -> str:
    (job_id,) = add(rj, **options)
    assert claim_ids(rj) == [job_id]
    return job_id


def test_finish_succeeded_stores_result_sets_ttl_and_publishes(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs)
    with subscribed(redisjobs, job_id) as pubsub:
        code = finish(
            redisjobs, job_id, "succeeded", ttl_ms=TTL_MS, result_json='{"ok": 1}'
        )
        assert code == 1
        assert next_published(redisjobs, pubsub, job_id) == "succeeded"
    fields = stored(redisjobs, job_id)
    assert fields["status"] == "succeeded"
    assert fields["result"] == '{"ok": 1}'
    assert fields["finished_ms"] == str(NOW + 100)
    assert fields["progress"] == "1"
    assert 0 < redisjobs.client.pttl(job_key(redisjobs, job_id)) <= TTL_MS
    assert zset(redisjobs, "succeeded") == [(job_id, NOW + 100)]
    assert zset(redisjobs, "active") == []


def test_finish_retrying_schedules_job_at_due_ms_without_ttl(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs)
    error = JobError("builtins.ValueError", "bad input", "Traceback ...")
    with subscribed(redisjobs, job_id) as pubsub:
        code = finish(redisjobs, job_id, "retrying", due_ms=NOW + 9_000, error=error)
        assert code == 1
        assert next_published(redisjobs, pubsub, job_id) == "sentinel"
    fields = stored(redisjobs, job_id)
    assert fields["status"] == "retrying"
    assert fields["run_at_ms"] == str(NOW + 9_000)
    assert fields["error_class"] == "builtins.ValueError"
    assert fields["error_message"] == "bad input"
    assert fields["traceback"] == "Traceback ..."
    assert zset(redisjobs, "scheduled") == [(job_id, NOW + 9_000)]
    assert zset(redisjobs, "active") == []
    assert redisjobs.client.pttl(job_key(redisjobs, job_id)) == -1


def test_finish_dead_moves_job_to_dead_zset_with_ttl_and_error(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs)
    error = JobError("builtins.KeyError", "'x'", "Traceback (most recent call last)")
    with subscribed(redisjobs, job_id) as pubsub:
        assert finish(redisjobs, job_id, "dead", ttl_ms=TTL_MS, error=error) == 1
        assert next_published(redisjobs, pubsub, job_id) == "dead"
    fields = stored(redisjobs, job_id)
    assert fields["status"] == "dead"
    assert fields["error_class"] == "builtins.KeyError"
    assert fields["traceback"] == "Traceback (most recent call last)"
    assert fields["finished_ms"] == str(NOW + 100)
    assert zset(redisjobs, "dead") == [(job_id, NOW + 100)]
    assert zset(redisjobs, "active") == []
    assert 0 < redisjobs.client.pttl(job_key(redisjobs, job_id)) <= TTL_MS


def test_finish_cancelled_moves_job_to_cancelled_zset_with_ttl(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs)
    with subscribed(redisjobs, job_id) as pubsub:
        assert finish(redisjobs, job_id, "cancelled", ttl_ms=TTL_MS) == 1
        assert next_published(redisjobs, pubsub, job_id) == "cancelled"
    assert stored(redisjobs, job_id)["status"] == "cancelled"
    assert zset(redisjobs, "cancelled") == [(job_id, NOW + 100)]
    assert zset(redisjobs, "active") == []
    assert 0 < redisjobs.client.pttl(job_key(redisjobs, job_id)) <= TTL_MS


def test_finish_requeued_puts_job_back_at_head_and_gives_the_attempt_back(
    redisjobs: RedisJobs,
) -> None:
    first, second = add(redisjobs, 2)
    claim(redisjobs, 1)
    assert redisjobs.store.set_progress(first, Q, ("w1", 1), 0.6)
    assert stored(redisjobs, first)["progress"] == "0.6"
    redisjobs.client.delete(key(redisjobs, "marker"))
    assert finish(redisjobs, first, "requeued") == 1
    assert ready(redisjobs) == [first, second]
    fields = stored(redisjobs, first)
    assert fields["status"] == "queued"
    assert fields["attempts"] == "0"
    assert fields["progress"] == "0"  # the next attempt starts from scratch
    assert fields["worker"] == ""
    assert zset(redisjobs, "active") == []
    assert has_marker(redisjobs)
    assert redisjobs.client.pttl(job_key(redisjobs, first)) == -1


def test_finish_requeued_prioritized_job_returns_to_prioritized_zset(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs, priority=4)
    assert finish(redisjobs, job_id, "requeued") == 1
    assert zset(redisjobs, "prioritized") == [(job_id, priority_score(4, NOW))]
    assert ready(redisjobs) == []


def test_finish_by_another_worker_returns_0_and_leaves_job_untouched(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs)
    before = stored(redisjobs, job_id)
    assert finish(redisjobs, job_id, "succeeded", worker="w2", ttl_ms=TTL_MS) == 0
    assert stored(redisjobs, job_id) == before
    assert zset(redisjobs, "active") == [(job_id, NOW + LEASE_MS)]
    assert zset(redisjobs, "succeeded") == []


def test_finish_of_a_stale_attempt_returns_0_and_leaves_job_untouched(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs)
    before = stored(redisjobs, job_id)
    assert finish(redisjobs, job_id, "dead", attempt=2, ttl_ms=TTL_MS) == 0
    assert stored(redisjobs, job_id) == before
    assert zset(redisjobs, "dead") == []


def test_finish_after_lease_was_recovered_returns_0(redisjobs: RedisJobs) -> None:
    job_id = _claimed(redisjobs)
    recover(redisjobs, NOW + LEASE_MS + 1)
    before = stored(redisjobs, job_id)
    assert finish(redisjobs, job_id, "succeeded", ttl_ms=TTL_MS) == 0
    assert stored(redisjobs, job_id) == before
    assert ready(redisjobs) == [job_id]


def test_finish_returns_minus_1_when_the_hash_is_gone(redisjobs: RedisJobs) -> None:
    job_id = _claimed(redisjobs)
    redisjobs.client.delete(job_key(redisjobs, job_id))
    assert finish(redisjobs, job_id, "succeeded", ttl_ms=TTL_MS) == -1
    assert not redisjobs.client.exists(job_key(redisjobs, job_id))


def test_finish_maps_codes_back_to_outcomes_across_queues(
    redisjobs: RedisJobs,
) -> None:
    a, c = make_job("a"), make_job("a")
    b = make_job("b")
    enqueue(redisjobs, a, b, c)
    redisjobs.store.claim("a", "w1", 10, NOW, LEASE_MS)
    outcomes = [
        Outcome(a.id, "a", 1, "succeeded", ttl_ms=TTL_MS),
        Outcome(b.id, "b", 1, "succeeded", ttl_ms=TTL_MS),  # never claimed
        Outcome(c.id, "a", 1, "cancelled", ttl_ms=TTL_MS),
    ]
    assert redisjobs.store.finish(outcomes, "w1", NOW + 1) == [1, 0, 1]
    assert stored(redisjobs, c.id, "a")["status"] == "cancelled"
    assert stored(redisjobs, b.id, "b")["status"] == "queued"


def test_finish_jobs_wrapper_returns_one_code_per_job(redisjobs: RedisJobs) -> None:
    job_id = _claimed(redisjobs)
    p = redisjobs.prefix
    script_keys = list(finish_jobs_keys(p, Q))
    args: list[object] = [NOW + 1, "w1", keys.job_channel_prefix(p, Q)]
    args += [job_id, 1, "succeeded", 0, TTL_MS, "3", "", "", ""]
    args += ["missing", 1, "succeeded", 0, TTL_MS, "3", "", "", ""]
    assert redisjobs.store.scripts.finish_jobs(script_keys, args) == [1, -1]
    assert stored(redisjobs, job_id)["result"] == "3"


def test_finish_answers_minus_1_for_a_wrong_type_job_key_and_records_the_others(
    redisjobs: RedisJobs,
) -> None:
    first, damaged, odd_ttl = add(redisjobs, 3)
    claim(redisjobs)
    redisjobs.client.delete(job_key(redisjobs, damaged))
    redisjobs.client.set(job_key(redisjobs, damaged), "not a hash")
    # PEXPIRE refuses "inf"; tonumber("inf") used to pass as a positive TTL.
    redisjobs.client.hset(job_key(redisjobs, odd_ttl), "result_ttl_ms", "inf")
    outcomes = [
        Outcome(first, Q, 1, "succeeded", ttl_ms=TTL_MS),
        Outcome(damaged, Q, 1, "succeeded", ttl_ms=TTL_MS),
        Outcome(odd_ttl, Q, 1, "succeeded", ttl_ms=0),  # the job's own TTL, then
    ]

    assert redisjobs.store.finish(outcomes, "w1", NOW + 100) == [1, -1, 1]

    assert stored(redisjobs, first)["status"] == "succeeded"
    assert stored(redisjobs, odd_ttl)["status"] == "succeeded"
    assert [m for m, _ in zset(redisjobs, "succeeded")] == sorted([first, odd_ttl])
    assert redisjobs.client.get(job_key(redisjobs, damaged)) == "not a hash"
    # Left leased: recover_jobs.lua sets it aside once the lease runs out.
    assert [m for m, _ in zset(redisjobs, "active")] == [damaged]


def test_finish_into_a_wrong_type_scheduled_key_leaves_the_job_leased(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs)
    redisjobs.client.set(key(redisjobs, "scheduled"), "not a zset")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        finish(redisjobs, job_id, "retrying", due_ms=NOW + 500)
    assert stored(redisjobs, job_id)["status"] == "active"
    assert zset(redisjobs, "active") == [(job_id, NOW + LEASE_MS)]


def test_recover_only_drops_an_ended_job_left_in_the_active_set(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs)
    assert finish(redisjobs, job_id, "succeeded", ttl_ms=TTL_MS) == 1
    # What a finish_jobs call that failed after the hashes would leave.
    redisjobs.client.zadd(key(redisjobs, "active"), {job_id: NOW + LEASE_MS})
    assert recover(redisjobs, NOW + LEASE_MS + 1) == Recovered(0, 0, [])
    assert zset(redisjobs, "active") == []
    assert stored(redisjobs, job_id)["status"] == "succeeded"
    assert ready(redisjobs) == []


# -- promote_due --------------------------------------------------------------


def _scheduled(rj: RedisJobs, *due_ms: int, priority: int = 0) -> list[str]:
    return [add(rj, run_at_ms=due, priority=priority)[0] for due in due_ms]


def test_promote_moves_only_due_jobs_and_reports_next_due(
    redisjobs: RedisJobs,
) -> None:
    first, second, third = _scheduled(redisjobs, NOW + 10, NOW + 20, NOW + 30)
    assert redisjobs.store.promote_due(Q, NOW + 20, 10) == (2, NOW + 30)
    assert ready(redisjobs) == [first, second]
    assert stored(redisjobs, first)["status"] == "queued"
    assert stored(redisjobs, third)["status"] == "scheduled"
    assert zset(redisjobs, "scheduled") == [(third, NOW + 30)]


def test_promote_returns_minus_1_when_nothing_is_scheduled(
    redisjobs: RedisJobs,
) -> None:
    assert redisjobs.store.promote_due(Q, NOW, 10) == (0, -1)
    _scheduled(redisjobs, NOW + 10)
    assert redisjobs.store.promote_due(Q, NOW + 10, 10) == (1, -1)


def test_promote_before_anything_is_due_moves_nothing_and_sets_no_marker(
    redisjobs: RedisJobs,
) -> None:
    _scheduled(redisjobs, NOW + 10)
    assert redisjobs.store.promote_due(Q, NOW + 9, 10) == (0, NOW + 10)
    assert ready(redisjobs) == []
    assert not has_marker(redisjobs)


def test_promote_sends_prioritized_job_to_prioritized_zset_by_its_score(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = _scheduled(redisjobs, NOW + 10, priority=9)
    assert redisjobs.store.promote_due(Q, NOW + 10, 10) == (1, -1)
    assert zset(redisjobs, "prioritized") == [(job_id, priority_score(9, NOW))]
    assert ready(redisjobs) == []


def test_promote_respects_limit(redisjobs: RedisJobs) -> None:
    ids = _scheduled(redisjobs, NOW + 1, NOW + 2, NOW + 3)
    assert redisjobs.store.promote_due(Q, NOW + 5, 2) == (2, NOW + 3)
    assert ready(redisjobs) == ids[:2]
    assert redisjobs.store.promote_due(Q, NOW + 5, 2) == (1, -1)
    assert ready(redisjobs) == ids


def test_promote_sends_job_with_corrupt_score_to_the_plain_list(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = _scheduled(redisjobs, NOW + 1)
    redisjobs.client.hset(job_key(redisjobs, job_id), "score", "abc")
    assert redisjobs.store.promote_due(Q, NOW + 1, 10) == (1, -1)
    assert ready(redisjobs) == [job_id]
    assert zset(redisjobs, "prioritized") == []


def test_promote_sets_marker_when_it_moves_jobs(redisjobs: RedisJobs) -> None:
    _scheduled(redisjobs, NOW + 1)
    assert not has_marker(redisjobs)
    redisjobs.store.promote_due(Q, NOW + 1, 10)
    assert has_marker(redisjobs)


def test_promote_drops_an_id_whose_hash_is_gone(redisjobs: RedisJobs) -> None:
    gone, kept = _scheduled(redisjobs, NOW + 1, NOW + 2)
    redisjobs.client.delete(job_key(redisjobs, gone))
    assert redisjobs.store.promote_due(Q, NOW + 5, 10) == (1, -1)
    assert ready(redisjobs) == [kept]
    assert zset(redisjobs, "scheduled") == []


def test_promote_makes_a_retrying_job_queued_again(redisjobs: RedisJobs) -> None:
    job_id = _claimed(redisjobs)
    finish(redisjobs, job_id, "retrying", due_ms=NOW + 500)
    assert redisjobs.store.promote_due(Q, NOW + 499, 10) == (0, NOW + 500)
    assert redisjobs.store.promote_due(Q, NOW + 500, 10) == (1, -1)
    assert stored(redisjobs, job_id)["status"] == "queued"
    assert ready(redisjobs) == [job_id]


def test_promote_sets_aside_a_wrong_type_job_key_and_moves_the_jobs_around_it(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    first, damaged, nan_score, last = _scheduled(
        redisjobs, NOW + 1, NOW + 2, NOW + 3, NOW + 4
    )
    redisjobs.client.delete(job_key(redisjobs, damaged))
    redisjobs.client.set(job_key(redisjobs, damaged), "not a hash")
    # Redis refuses NaN as a score, but a score field in the hash can say it.
    redisjobs.client.hset(job_key(redisjobs, nan_score), "score", "nan")

    with caplog.at_level(logging.WARNING, "django_redisjobs.scripts"):
        assert redisjobs.store.promote_due(Q, NOW + 10, 10) == (3, -1)

    assert ready(redisjobs) == [first, nan_score, last]
    for job_id in (first, nan_score, last):
        assert stored(redisjobs, job_id)["status"] == "queued"
    assert zset(redisjobs, "scheduled") == []
    assert redisjobs.client.get(job_key(redisjobs, damaged)) == "not a hash"
    (record,) = caplog.records
    assert damaged in record.getMessage()
    assert "holds a string, not a hash" in record.getMessage()


def test_promote_reports_no_next_due_time_for_an_infinite_score(
    redisjobs: RedisJobs,
) -> None:
    never, *at_once = _scheduled(redisjobs, NOW + 1, NOW + 2, NOW + 3)
    scheduled = key(redisjobs, "scheduled")
    infinite = {never: float("inf")} | dict.fromkeys(at_once, float("-inf"))
    redisjobs.client.zadd(scheduled, infinite)
    # -inf is due at once; left behind by the limit, it is due now (not an
    # integer overflow), and +inf is never due.
    assert redisjobs.store.promote_due(Q, NOW, 1) == (1, NOW)
    assert redisjobs.store.promote_due(Q, NOW, 10) == (1, -1)
    assert ready(redisjobs) == at_once
    assert zset(redisjobs, "scheduled") == [(never, float("inf"))]


def test_promote_with_a_wrong_type_ready_key_fails_before_anything_moves(
    redisjobs: RedisJobs,
) -> None:
    ids = _scheduled(redisjobs, NOW + 1, NOW + 2)
    redisjobs.client.set(key(redisjobs, "ready"), "not a list")
    # Raised by a prelude helper: the error names the prelude's line.
    with pytest.raises(
        ResponseError, match=r"WRONGTYPE .*ready holds a string.*\(_prelude\.lua line"
    ):
        redisjobs.store.promote_due(Q, NOW + 10, 10)
    assert [m for m, _ in zset(redisjobs, "scheduled")] == ids
    assert {stored(redisjobs, i)["status"] for i in ids} == {"scheduled"}


# -- recover_expired ----------------------------------------------------------


def test_recover_takes_only_leases_whose_deadline_has_passed(
    redisjobs: RedisJobs,
) -> None:
    early, late = add(redisjobs, 2)
    claim(redisjobs, 1, now_ms=NOW)
    claim(redisjobs, 1, now_ms=NOW + 1_000)
    assert recover(redisjobs, NOW + LEASE_MS) == Recovered(0, 0, [])
    assert recover(redisjobs, NOW + LEASE_MS + 1) == Recovered(1, 0, [early])
    assert zset(redisjobs, "active") == [(late, NOW + 1_000 + LEASE_MS)]


def test_recover_requeues_at_head_and_records_the_lost_worker(
    redisjobs: RedisJobs,
) -> None:
    lost, waiting = add(redisjobs, 2)
    claim(redisjobs, 1, worker="host-1:42")
    redisjobs.client.delete(key(redisjobs, "marker"))
    assert recover(redisjobs, NOW + LEASE_MS + 1) == Recovered(1, 0, [lost])
    assert ready(redisjobs) == [lost, waiting]
    fields = stored(redisjobs, lost)
    assert fields["status"] == "queued"
    assert fields["lost"] == "1"
    assert fields["attempts"] == "1"
    assert fields["worker"] == ""
    assert fields["error_class"] == WORKER_LOST
    assert fields["error_message"] == (
        "Worker host-1:42 stopped renewing its lease during attempt 1."
    )
    assert has_marker(redisjobs)


def test_recover_counts_every_lost_attempt(redisjobs: RedisJobs) -> None:
    job_id = _claimed(redisjobs)
    recover(redisjobs, NOW + LEASE_MS + 1)
    claim(redisjobs, now_ms=NOW + LEASE_MS + 2)
    recover(redisjobs, NOW + 2 * LEASE_MS + 3)
    fields = stored(redisjobs, job_id)
    assert (fields["lost"], fields["attempts"]) == ("2", "2")


def test_recover_returns_prioritized_job_to_prioritized_zset(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs, priority=-2)
    assert recover(redisjobs, NOW + LEASE_MS + 1).requeued == 1
    assert zset(redisjobs, "prioritized") == [(job_id, priority_score(-2, NOW))]
    assert ready(redisjobs) == []


def test_recover_buries_job_that_used_its_last_attempt(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs, max_attempts=1)
    now = NOW + LEASE_MS + 1
    with subscribed(redisjobs, job_id) as pubsub:
        assert recover(redisjobs, now) == Recovered(0, 1, [job_id])
        assert next_published(redisjobs, pubsub, job_id) == "dead"
    fields = stored(redisjobs, job_id)
    assert fields["status"] == "dead"
    assert fields["finished_ms"] == str(now)
    assert fields["error_class"] == WORKER_LOST
    assert zset(redisjobs, "dead") == [(job_id, now)]
    assert ready(redisjobs) == []
    assert 0 < redisjobs.client.pttl(job_key(redisjobs, job_id)) <= DEAD_TTL_MS


def test_recover_respects_limit(redisjobs: RedisJobs) -> None:
    ids = add(redisjobs, 3)
    claim(redisjobs)
    assert recover(redisjobs, NOW + LEASE_MS + 1, limit=2).requeued == 2
    assert len(zset(redisjobs, "active")) == 1
    assert recover(redisjobs, NOW + LEASE_MS + 1, limit=2).requeued == 1
    assert sorted(ready(redisjobs)) == sorted(ids)


def test_recover_drops_ids_whose_hash_is_gone_from_active(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs)
    redisjobs.client.delete(job_key(redisjobs, job_id))
    assert recover(redisjobs, NOW + LEASE_MS + 1) == Recovered(0, 0, [])
    assert zset(redisjobs, "active") == []
    assert ready(redisjobs) == []
    assert not has_marker(redisjobs)


def test_recover_sets_aside_a_wrong_type_job_key_and_takes_back_the_others(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    first, damaged, nan_score = add(redisjobs, 3)
    claim(redisjobs)
    redisjobs.client.delete(job_key(redisjobs, damaged))
    redisjobs.client.sadd(job_key(redisjobs, damaged), "not a hash")
    redisjobs.client.hset(job_key(redisjobs, nan_score), "score", "nan")

    with caplog.at_level(logging.WARNING, "django_redisjobs.scripts"):
        recovered = recover(redisjobs, NOW + LEASE_MS + 1)

    assert recovered == Recovered(2, 0, [first, nan_score])
    assert ready(redisjobs) == [nan_score, first]  # each to the head, in turn
    assert zset(redisjobs, "active") == []
    assert redisjobs.client.smembers(job_key(redisjobs, damaged)) == {"not a hash"}
    (record,) = caplog.records
    assert damaged in record.getMessage()
    assert "holds a set, not a hash" in record.getMessage()


def test_recover_with_a_wrong_type_dead_key_fails_before_anything_moves(
    redisjobs: RedisJobs,
) -> None:
    job_id = _claimed(redisjobs, max_attempts=1)
    before = stored(redisjobs, job_id)
    redisjobs.client.set(key(redisjobs, "dead"), "not a zset")
    with pytest.raises(ResponseError, match="WRONGTYPE .*dead holds a string"):
        recover(redisjobs, NOW + LEASE_MS + 1)
    assert zset(redisjobs, "active") == [(job_id, NOW + LEASE_MS)]
    assert stored(redisjobs, job_id) == before


# -- cancel_job -----------------------------------------------------------------


def test_cancel_of_a_wrong_type_job_key_finds_no_job_and_changes_nothing(
    redisjobs: RedisJobs,
) -> None:
    first, damaged, nan_score = add(redisjobs, 3)
    redisjobs.client.delete(job_key(redisjobs, damaged))
    redisjobs.client.set(job_key(redisjobs, damaged), "not a hash")
    # In the list (default priority), whatever its score field says now.
    redisjobs.client.hset(job_key(redisjobs, nan_score), "score", "nan")

    with pytest.raises(JobDoesNotExist):
        redisjobs.store.cancel(damaged, Q, NOW)
    assert redisjobs.store.cancel(nan_score, Q, NOW) == Cancelled.ENDED

    assert ready(redisjobs) == [first, damaged]
    assert redisjobs.client.get(job_key(redisjobs, damaged)) == "not a hash"
    assert stored(redisjobs, nan_score)["status"] == "cancelled"
    assert zset(redisjobs, "cancelled") == [(nan_score, NOW)]


def test_cancel_with_a_wrong_type_cancelled_key_fails_before_anything_changes(
    redisjobs: RedisJobs,
) -> None:
    (job_id,) = add(redisjobs)
    before = stored(redisjobs, job_id)
    redisjobs.client.set(key(redisjobs, "cancelled"), "not a zset")
    with pytest.raises(ResponseError, match="WRONGTYPE .*cancelled holds a string"):
        redisjobs.store.cancel(job_id, Q, NOW)
    assert ready(redisjobs) == [job_id]
    assert stored(redisjobs, job_id) == before
