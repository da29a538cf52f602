"""Cron fire times against real Redis: once per fire time, missed runs, cleanup.

Every test steps an injected clock (epoch ms); nothing sleeps.
"""

import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.test import override_settings

from django_redisjobs import JobStatus, keys
from django_redisjobs.conf import get_settings
from django_redisjobs.connection import build_client, connect
from django_redisjobs.cron import CronEntry, parse_entry, slot_job_id
from django_redisjobs.job import from_ms, to_ms
from django_redisjobs.queue import EnqueueRequest, JobStore
from django_redisjobs.registry import Registry, registry
from django_redisjobs.scheduler import Scheduler, SchedulerConfig, cron_entries
from django_redisjobs.worker import Worker, WorkerConfig
from tests import cron_jobs

Q = "cron"
MINUTE = 60_000


def ms(text: str) -> int:
    """Epoch ms of an ISO time, read as UTC unless it has an offset."""
    moment = datetime.fromisoformat(text)
    return to_ms(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def entry(name: str, schedule: str, **options: Any) -> CronEntry:
    raw = {"function": "tests.cron_jobs.record", "args": [name], "queue": Q}
    raw.update(name=name, schedule=schedule, **options)
    return parse_entry(raw, default_timezone="UTC")


def scheduler(store: JobStore, *entries: CronEntry, **config: Any) -> Scheduler:
    return Scheduler(store, (), SchedulerConfig(**config), cron=entries)


def fired(store: JobStore, queue: str = Q) -> list[tuple[str, datetime]]:
    """(entry name, fire time) of every job enqueued on `queue`, in queue order."""
    ids = store.client.lrange(keys.ready(store.prefix, queue), 0, -1)
    jobs = store.get_many(ids, queue)
    return [(job.args[0], job.run_at) for job in jobs if job and job.run_at]


def fire_times(store: JobStore, name: str) -> list[datetime]:
    return [when for label, when in fired(store) if label == name]


def at(text: str) -> datetime:
    return from_ms(ms(text)) or datetime.min


@pytest.fixture
def stores(redisjobs: Any) -> Iterator[list[JobStore]]:
    """Four JobStores on four separate clients: four schedulers' worth."""
    settings = get_settings()
    made: list[JobStore] = []
    for _ in range(4):
        client = build_client(settings)
        made.append(JobStore(connect(client), settings))
    yield made
    for store in made:
        store.connection.close()


# -- one scheduler ----------------------------------------------------------------


def test_new_entry_starts_at_first_sight_without_backfill(redisjobs: Any) -> None:
    store = redisjobs.store
    cron = scheduler(store, entry("e", "*/5 * * * *"))

    cron.tick(ms("2024-01-01 10:00:30"))  # 10:00 passed before the entry was seen

    assert fired(store) == []
    cron.tick(ms("2024-01-01 10:05:00"))
    assert fired(store) == [("e", at("2024-01-01 10:05"))]


def test_due_fire_time_is_enqueued_once_with_a_derived_id(redisjobs: Any) -> None:
    store = redisjobs.store
    cron = scheduler(store, entry("e", "0 * * * *", kwargs={}))
    cron.tick(ms("2024-01-01 09:30"))

    for second in (0, 1, 30, 59):
        cron.tick(ms(f"2024-01-01 10:00:{second:02d}"))

    ids = store.client.lrange(keys.ready(store.prefix, Q), 0, -1)
    assert ids == [slot_job_id("e", at("2024-01-01 10:00"))]
    job = store.get(ids[0], Q)
    assert job.func == "tests.cron_jobs.record"
    assert job.args == ["e"] and job.status is JobStatus.QUEUED
    assert job.run_at == at("2024-01-01 10:00")
    assert Q in store.known_queues()


def test_tick_asks_to_wake_at_the_next_fire_time(redisjobs: Any) -> None:
    cron = scheduler(redisjobs.store, entry("e", "*/5 * * * *"))

    wake = cron.tick(ms("2024-01-01 10:04:59.500"))

    assert wake == ms("2024-01-01 10:05")


def test_expired_job_hash_does_not_fire_its_slot_again(redisjobs: Any) -> None:
    store = redisjobs.store
    cron = scheduler(store, entry("e", "0 * * * *"))
    cron.tick(ms("2024-01-01 09:30"))
    cron.tick(ms("2024-01-01 10:00:01"))
    job_id = slot_job_id("e", at("2024-01-01 10:00"))
    # The job ran and its result TTL passed: its hash and listing are gone.
    store.client.delete(keys.job(store.prefix, Q, job_id))
    store.client.delete(keys.ready(store.prefix, Q))

    cron.tick(ms("2024-01-01 10:00:30"))
    restarted = scheduler(store, entry("e", "0 * * * *"))
    restarted.tick(ms("2024-01-01 10:30"))

    assert fired(store) == []
    assert not store.client.exists(keys.job(store.prefix, Q, job_id))


def test_priority_of_the_function_applies_to_cron_jobs(redisjobs: Any) -> None:
    store = redisjobs.store
    urgent = parse_entry(
        {"name": "u", "function": "tests.cron_jobs.urgent", "schedule": "* * * * *"},
        default_timezone="UTC",
    )
    cron = scheduler(store, urgent)
    cron.tick(ms("2024-01-01 10:00:30"))
    cron.tick(ms("2024-01-01 10:01:00"))

    prioritized = store.client.zrange(keys.prioritized(store.prefix, Q), 0, -1)
    assert prioritized == [slot_job_id("u", at("2024-01-01 10:01"))]
    assert store.get(prioritized[0], Q).priority == 5


@pytest.mark.parametrize("function", ["configured", "record"])
def test_cron_jobs_get_the_options_delay_gives_the_same_function(
    redisjobs: Any, function: str
) -> None:
    store = redisjobs.store
    raw = {"name": "o", "function": f"tests.cron_jobs.{function}"}
    cron = scheduler(
        store, parse_entry({**raw, "schedule": "* * * * *"}, default_timezone="UTC")
    )
    cron.tick(ms("2024-01-01 10:00:30"))
    cron.tick(ms("2024-01-01 10:01:00"))

    from_cron = store.get(slot_job_id("o", at("2024-01-01 10:01")), Q)
    delayed = getattr(cron_jobs, function).delay().job
    for option in ("queue", "priority", "max_attempts", "timeout", "result_ttl"):
        assert getattr(from_cron, option) == getattr(delayed, option), option


def test_a_cron_entry_queue_wins_over_the_functions(redisjobs: Any) -> None:
    store = redisjobs.store
    raw = {"name": "q", "function": "tests.cron_jobs.configured", "queue": "other"}
    cron = scheduler(
        store, parse_entry({**raw, "schedule": "* * * * *"}, default_timezone="UTC")
    )
    cron.tick(ms("2024-01-01 10:00:30"))
    cron.tick(ms("2024-01-01 10:01:00"))

    job = store.get(slot_job_id("q", at("2024-01-01 10:01")), "other")
    assert (job.queue, job.priority, job.max_attempts) == ("other", -3, 2)


# -- DST, end to end --------------------------------------------------------------


def test_berlin_daily_entry_fires_once_per_day_across_both_transitions(
    redisjobs: Any,
) -> None:
    store = redisjobs.store
    # "skip": the jump from April to October must not fire a missed day.
    daily = entry("d", "30 2 * * *", timezone="Europe/Berlin", missed="skip")
    cron = scheduler(store, daily)
    now = ms("2024-03-30 00:00")
    cron.tick(now)

    # Every half hour: ticks land on 02:30 CEST and on 02:30 CET alike.
    for step in range(0, 8 * 24 * 60, 30):  # for eight days
        cron.tick(now + step * MINUTE)
    start_fall = ms("2024-10-25 00:00")
    cron.tick(start_fall)
    for step in range(0, 4 * 24 * 60, 30):
        cron.tick(start_fall + step * MINUTE)

    local = [t.astimezone(daily.schedule.zone) for t in fire_times(store, "d")]
    assert [t.strftime("%m-%d %H:%M %Z") for t in local[:3]] == [
        "03-30 02:30 CET",
        "03-31 03:00 CEST",  # 02:30 did not exist: once, at the end of the gap
        "04-01 02:30 CEST",
    ]
    # 2024-10-27 02:30 happened twice; only the first (CEST) fired.
    assert [t.strftime("%m-%d %H:%M %Z") for t in local[-4:]] == [
        "10-25 02:30 CEST",
        "10-26 02:30 CEST",
        "10-27 02:30 CEST",
        "10-28 02:30 CET",
    ]
    assert len(local) == 8 + 4


# -- several schedulers racing ----------------------------------------------------


def test_racing_schedulers_enqueue_each_fire_time_exactly_once(
    redisjobs: Any, stores: list[JobStore]
) -> None:
    cron = [
        entry("minute", "* * * * *"),
        entry("quarter-berlin", "*/15 * * * *", timezone="Europe/Berlin"),
        entry("nightly-berlin", "30 2 * * *", timezone="Europe/Berlin"),
        entry("catch-up", "*/2 * * * *", missed="all", missed_limit=50),
    ]
    # Berlin springs forward at 01:00 UTC inside this window.
    start, steps, step_ms = ms("2024-03-31 00:20"), 60 * 3, 20_000
    schedulers = [scheduler(store, *cron) for store in stores]
    skew_ms = [0, 150, 700, 2_000]  # clocks a little apart, as across hosts
    barrier = threading.Barrier(len(schedulers))
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            for step in range(steps + 1):
                barrier.wait()
                schedulers[index].tick(start + step * step_ms + skew_ms[index])
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    switch_s = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # hand the GIL over at each barrier promptly
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch_s)

    assert errors == []
    end = start + steps * step_ms
    jobs = fired(redisjobs.store)
    assert len(jobs) == len(set(jobs))  # no fire time twice
    for item in cron:
        # Every fire time after the first tick, up to the last, and nothing else.
        expected = item.schedule.between(at_ms(start), at_ms(end), 10_000)
        assert fire_times(redisjobs.store, item.name) == expected, item.name
    nightly = fire_times(redisjobs.store, "nightly-berlin")
    assert nightly == [at("2024-03-31 01:00")]  # 03:00 CEST, once


def at_ms(value: int) -> datetime:
    return from_ms(value) or datetime.min


# -- missed fire times ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, ["11:00"]),
        ({"missed": "latest"}, ["11:00"]),
        ({"missed": "skip"}, []),
        ({"missed": "all", "missed_limit": 3}, ["10:50", "10:55", "11:00"]),
        (
            {"missed": "all", "missed_limit": 100},
            [f"10:{m:02d}" for m in range(5, 60, 5)] + ["11:00"],
        ),
    ],
)
def test_missed_policy_decides_what_a_restarted_scheduler_fires(
    redisjobs: Any, options: dict[str, Any], expected: list[str]
) -> None:
    store = redisjobs.store
    before = scheduler(store, entry("e", "*/5 * * * *", **options))
    before.tick(ms("2024-01-01 09:58"))
    before.tick(ms("2024-01-01 10:00:00.300"))  # fires 10:00 on time
    # No scheduler runs until 11:02; then a new worker starts.
    after = scheduler(store, entry("e", "*/5 * * * *", **options))

    after.tick(ms("2024-01-01 11:02"))
    after.tick(ms("2024-01-01 11:03"))

    expected_times = [at("2024-01-01 10:00")] + [
        at(f"2024-01-01 {t}") for t in expected
    ]
    assert fire_times(store, "e") == expected_times
    after.tick(ms("2024-01-01 11:05:01"))
    assert fire_times(store, "e")[-1] == at("2024-01-01 11:05")  # back on schedule


def test_skip_still_fires_a_fire_time_that_is_late_but_on_time(redisjobs: Any) -> None:
    store = redisjobs.store
    cron = scheduler(store, entry("e", "*/5 * * * *", missed="skip"))
    cron.tick(ms("2024-01-01 09:58"))

    cron.tick(ms("2024-01-01 10:00:45"))  # 45 s late: within a minute

    assert fire_times(store, "e") == [at("2024-01-01 10:00")]


def test_missed_policy_also_applies_to_a_scheduler_that_paused(redisjobs: Any) -> None:
    store = redisjobs.store
    cron = scheduler(store, entry("e", "*/5 * * * *", missed="all", missed_limit=2))
    cron.tick(ms("2024-01-01 09:58"))

    cron.tick(ms("2024-01-01 10:31"))  # e.g. Redis was unreachable for half an hour

    assert fire_times(store, "e") == [at("2024-01-01 10:25"), at("2024-01-01 10:30")]


# -- state cleanup ----------------------------------------------------------------


def state(store: JobStore, queue: str = Q) -> dict[str, str]:
    return dict(store.client.hgetall(keys.cron(store.prefix, queue)))


FORGET = {"trim_every_ms": MINUTE, "cron_forget_ms": 10 * MINUTE}


def test_removed_entry_state_is_forgotten_after_the_forget_period(
    redisjobs: Any, stores: list[JobStore]
) -> None:
    old = scheduler(stores[0], entry("kept", "* * * * *"), entry("gone", "* * * * *"))
    start = ms("2024-01-01 10:00:30")
    old.tick(start)
    old.tick(start + MINUTE)
    assert {"gone", "gone:fired", "gone:seen"} <= set(state(stores[0]))
    # Next deploy: "gone" left the settings; the old worker stopped.
    new = scheduler(stores[1], entry("kept", "* * * * *"), **FORGET)

    for minute in range(2, 12):
        new.tick(start + minute * MINUTE)
    assert "gone" in state(stores[1])  # the new scheduler has not run long enough
    new.tick(start + 13 * MINUTE)

    assert sorted(state(stores[1])) == ["kept", "kept:fired", "kept:seen"]


def test_entry_another_live_scheduler_knows_is_kept(
    redisjobs: Any, stores: list[JobStore]
) -> None:
    both = [entry("a", "*/5 * * * *"), entry("b", "*/5 * * * *")]
    full = scheduler(stores[0], *both, **FORGET)
    partial = scheduler(stores[1], both[0], **FORGET)  # e.g. an older deploy
    start = ms("2024-01-01 10:00:30")

    for minute in range(0, 40):
        full.tick(start + minute * MINUTE)
        partial.tick(start + minute * MINUTE + 1)

    assert {"a", "b"} <= set(state(stores[0]))
    assert len(fire_times(stores[0], "b")) == 7  # never lost, never doubled


def test_entry_moved_to_another_queue_leaves_nothing_in_the_old_one(
    redisjobs: Any, stores: list[JobStore]
) -> None:
    start = ms("2024-01-01 10:00:30")
    before = scheduler(stores[0], entry("e", "* * * * *"))
    before.tick(start)
    before.tick(start + MINUTE)
    moved = scheduler(stores[1], entry("e", "* * * * *", queue="elsewhere"), **FORGET)

    for minute in range(2, 14):
        moved.tick(start + minute * MINUTE)

    assert not stores[1].client.exists(keys.cron(stores[1].prefix, Q))
    assert set(state(stores[1], "elsewhere")) == {"e", "e:fired", "e:seen"}


def test_all_entries_removed_leaves_no_cron_keys(redisjobs: Any) -> None:
    store = redisjobs.store
    start = ms("2024-01-01 10:00:30")
    old = scheduler(store, entry("e", "* * * * *"))
    old.tick(start)
    old.tick(start + MINUTE)
    empty = scheduler(store, **FORGET)

    for minute in range(2, 14):
        empty.tick(start + minute * MINUTE)

    assert store.client.exists(keys.cron(store.prefix, Q)) == 0


# -- where entries come from ------------------------------------------------------


def test_decorated_function_is_an_entry_in_time_zone_of_settings(
    redisjobs: Any,
) -> None:
    functions = Registry()
    functions.register(cron_jobs.new_year.spec)
    functions.register(cron_jobs.record.spec)
    with override_settings(TIME_ZONE="America/New_York"):
        settings = get_settings()
        (found,) = cron_entries(settings, functions)
    assert found.name == found.function == "tests.cron_jobs.new_year"
    assert found.timezone == "America/New_York"
    store = redisjobs.store
    cron = Scheduler(store, (), cron=[found], functions=functions)
    cron.tick(ms("2029-12-31 12:00"))

    cron.tick(ms("2030-01-01 05:00:01"))  # midnight in New York

    ids = store.client.lrange(keys.ready(store.prefix, "cron-decorated"), 0, -1)
    assert ids == [slot_job_id(found.name, at("2030-01-01 05:00"))]


def test_settings_entry_replaces_the_decorated_entry_of_that_name(
    redisjobs: Any,
) -> None:
    replaced = {
        "name": "tests.cron_jobs.new_year",
        "function": "tests.cron_jobs.new_year",
        "schedule": "@hourly",
    }
    with override_settings(REDISJOBS={**redisjobs.settings, "CRON": [replaced]}):
        found = [
            e for e in cron_entries(get_settings(), registry) if "new_year" in e.name
        ]
    assert [e.expression for e in found] == ["@hourly"]


def test_entry_with_unknown_function_is_skipped_not_fatal(redisjobs: Any) -> None:
    broken = parse_entry(
        {"name": "x", "function": "tests.cron_jobs.missing", "schedule": "@daily"},
        default_timezone="UTC",
    )
    cron = scheduler(redisjobs.store, broken, entry("ok", "@daily"))
    assert [t.entry.name for t in cron.cron.targets] == ["ok"]


def test_worker_runs_a_settings_entry_end_to_end(redisjobs: Any) -> None:
    raw = {
        "name": "hello",
        "function": "tests.cron_jobs.record",
        "schedule": "0 9 * * 1-5",
        "timezone": "Europe/Berlin",
        "kwargs": {"label": "weekday"},
    }
    with override_settings(REDISJOBS={**redisjobs.settings, "CRON": [raw]}):
        store = redisjobs.store
        first = Scheduler(store, ())
        first.tick(ms("2024-07-01 06:00"))  # a Monday; the entry is first seen
        clock_ms = ms("2024-07-01 07:00:02")  # 09:00 CEST
        worker = Worker(
            WorkerConfig(
                queues=(Q,), burst=True, concurrency=1, grace=timedelta(seconds=5)
            ),
            clock=lambda: clock_ms,
        )

        stats = worker.run()

        job = store.get(slot_job_id("hello", at("2024-07-01 07:00")), Q)
    assert stats.succeeded == 1
    assert job.status is JobStatus.SUCCEEDED and job.result == "weekday"


# -- the scripts on their own -----------------------------------------------------


def request(name: str, fire: str) -> EnqueueRequest:
    from django_redisjobs.job import Job

    job = Job(
        id=slot_job_id(name, at(fire)),
        func="tests.cron_jobs.record",
        queue=Q,
        run_at=at(fire),
        enqueued_at=at(fire),
    )
    return EnqueueRequest(job, "[]", "{}")


def test_claim_script_starts_a_new_entry_and_refuses_handled_fire_times(
    redisjobs: Any,
) -> None:
    store = redisjobs.store
    now = ms("2024-01-01 10:00")

    first = store.claim_cron("e", Q, [request("e", "2024-01-01 09:59")], now, now)
    assert first.watermark_ms is None and first.job_ids == []
    assert state(store)["e"] == str(now)

    later = now + MINUTE
    second = store.claim_cron(
        "e",
        Q,
        [request("e", "2024-01-01 10:00"), request("e", "2024-01-01 10:01")],
        later,
        later,
    )
    assert second.watermark_ms == now
    assert second.job_ids == [slot_job_id("e", at("2024-01-01 10:01"))]
    assert state(store)["e:fired"] == str(later) == state(store)["e"]


def test_claim_script_raises_the_watermark_without_fire_times(redisjobs: Any) -> None:
    store = redisjobs.store
    now = ms("2024-01-01 10:00")
    store.claim_cron("e", Q, [], now, now)

    store.claim_cron("e", Q, [], now + MINUTE, now + MINUTE)
    store.claim_cron("e", Q, [], now + 30_000, now + 30_000)  # a slower clock

    assert state(store)["e"] == str(now + MINUTE)
    assert "e:fired" not in state(store)
    assert store.client.exists(keys.marker(store.prefix, Q)) == 0


def test_claim_script_leaves_an_existing_job_with_the_same_id(redisjobs: Any) -> None:
    store = redisjobs.store
    now = ms("2024-01-01 10:00")
    store.claim_cron("e", Q, [], now - MINUTE, now - MINUTE)
    req = request("e", "2024-01-01 10:00")
    store.enqueue([req], now)

    claim = store.claim_cron("e", Q, [req], now, now)

    assert claim.job_ids == []
    assert store.client.llen(keys.ready(store.prefix, Q)) == 1


def test_claim_script_starts_afresh_from_a_nan_watermark_and_skips_damaged_keys(
    redisjobs: Any,
) -> None:
    store = redisjobs.store
    now = ms("2024-01-01 10:00")
    store.client.hset(keys.cron(store.prefix, Q), "e", "nan")
    # nan compared false with every fire time: the entry never fired again.
    assert store.claim_cron("e", Q, [], now, now).watermark_ms is None
    assert state(store)["e"] == str(now)

    damaged, kept = request("e", "2024-01-01 10:01"), request("e", "2024-01-01 10:02")
    store.client.set(keys.job(store.prefix, Q, damaged.job.id), "not a hash")
    later = now + 2 * MINUTE
    claim = store.claim_cron("e", Q, [damaged, kept], later, later)

    assert claim.job_ids == [kept.job.id]
    assert store.client.get(keys.job(store.prefix, Q, damaged.job.id)) == "not a hash"


def test_claim_script_into_a_wrong_type_ready_key_stores_nothing_half(
    redisjobs: Any,
) -> None:
    store = redisjobs.store
    now = ms("2024-01-01 10:00")
    store.claim_cron("e", Q, [], now, now)
    ready_key = keys.ready(store.prefix, Q)
    store.client.set(ready_key, "not a list")
    req = request("e", "2024-01-01 10:01")

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        store.claim_cron("e", Q, [req], now + MINUTE, now + MINUTE)
    assert store.client.exists(keys.job(store.prefix, Q, req.job.id)) == 0
    assert state(store)["e"] == str(now)

    store.client.delete(ready_key)
    claim = store.claim_cron("e", Q, [req], now + MINUTE, now + MINUTE)
    assert claim.job_ids == [req.job.id]


def test_forget_script_deletes_only_entries_unseen_since_the_cutoff(
    redisjobs: Any,
) -> None:
    store = redisjobs.store
    store.claim_cron("old", Q, [], 1_000, 1_000)
    store.claim_cron("fresh", Q, [], 5_000, 5_000)
    store.client.hset(keys.cron(store.prefix, Q), "broken:seen", "x")
    store.client.hset(keys.cron(store.prefix, Q), "nan:seen", "nan")

    names = ["old", "fresh", "broken", "nan", "none"]
    forgotten = store.forget_cron_entries(Q, names, 2_000)

    # old, broken and nan (unreadable seen) and none (never seen)
    assert forgotten == 4
    assert sorted(state(store)) == ["fresh", "fresh:seen"]
    assert store.forget_cron_entries(Q, [], 2_000) == 0


def test_scheduler_starting_after_an_outage_does_not_forget_others_entries(
    redisjobs: Any, stores: list[JobStore]
) -> None:
    daily = entry("daily", "0 10 * * *")
    before = scheduler(stores[0], daily)
    before.tick(ms("2024-01-01 09:00"))
    before.tick(ms("2024-01-01 10:00:01"))
    # Every worker is down for a day; then two start, one without "daily".
    other = scheduler(stores[1], entry("other", "@hourly"), **FORGET)
    knows = scheduler(stores[2], daily, **FORGET)

    other.tick(ms("2024-01-02 12:00"))
    knows.tick(ms("2024-01-02 12:00:01"))

    # The missed 10:00 still fires ("latest"): its state outlived the outage.
    assert fire_times(stores[2], "daily") == [
        at("2024-01-01 10:00"),
        at("2024-01-02 10:00"),
    ]
