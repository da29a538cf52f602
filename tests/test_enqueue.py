"""@background, enqueue and handles, against the suite's real Redis."""

import datetime as dt
import decimal
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings

from django_redisjobs import (
    BackgroundFunction,
    InvalidJob,
    JobDoesNotExist,
    JobHandle,
    JobStatus,
    NoCurrentJob,
    RedisUnavailable,
    SerializationError,
    UnknownBackgroundFunction,
    WaitTimeout,
    background,
    current_job,
    keys,
    signals,
)
from tests import jobs
from tests.faults import in_forked_child


def test_calling_a_background_function_runs_it_inline(redisjobs: Any) -> None:
    assert jobs.add(2, 3) == 5
    assert redisjobs.store.counts("default")["queued"] == 0


def test_decorator_keeps_name_and_docstring() -> None:
    assert isinstance(jobs.touch_file, BackgroundFunction)
    assert jobs.touch_file.__name__ == "touch_file"
    assert jobs.touch_file.name == "tests.jobs.touch_file"
    assert "subprocess tests" in (jobs.touch_file.__doc__ or "")


def test_delay_stores_one_hash_and_queues_its_id(redisjobs: Any) -> None:
    handle = jobs.add.delay(2, b=3)

    assert handle.status is JobStatus.QUEUED
    assert len(handle.id) == 32
    fields = redisjobs.client.hgetall(keys.job(redisjobs.prefix, "default", handle.id))
    assert fields["func"] == "tests.jobs.add"
    assert fields["queue"] == "default"
    assert json.loads(fields["args"]) == [2]
    assert json.loads(fields["kwargs"]) == {"b": 3}
    assert fields["status"] == "queued"
    assert "attempts" not in fields  # absent means 0 until a claim
    assert fields["max_attempts"] == "3"
    assert int(fields["enqueued_ms"]) > 0
    assert redisjobs.client.lrange(keys.ready(redisjobs.prefix, "default"), 0, -1) == [
        handle.id
    ]
    # A queued job does not expire: it must wait for a worker however long.
    assert redisjobs.client.ttl(keys.job(redisjobs.prefix, "default", handle.id)) == -1


def test_enqueue_uses_the_function_queue_or_the_one_given(redisjobs: Any) -> None:
    assert jobs.echo.delay(1).queue == "other"
    assert jobs.echo.enqueue(args=[1], queue="special").queue == "special"
    assert "special" in redisjobs.store.known_queues()


def test_using_returns_a_copy_with_other_defaults(redisjobs: Any) -> None:
    urgent = jobs.add.using(queue="urgent", max_attempts=7)

    handle = urgent.delay(1, 2)

    assert handle.queue == "urgent"
    assert handle.job.max_attempts == 7
    assert jobs.add.delay(1, 2).queue == "default"


def test_ids_are_unique_and_sort_by_time(redisjobs: Any) -> None:
    ids = [jobs.add.delay(i, i).id for i in range(50)]
    assert len(set(ids)) == 50
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)


def test_delay_and_run_at_make_a_scheduled_job(redisjobs: Any) -> None:
    later = jobs.add.enqueue(args=[1, 2], delay=timedelta(hours=1))
    at = datetime(2099, 1, 1, tzinfo=UTC)
    fixed = jobs.add.enqueue(args=[1, 2], run_at=at)

    assert later.status is JobStatus.SCHEDULED
    scheduled = keys.scheduled(redisjobs.prefix, "default")
    assert redisjobs.client.zscore(scheduled, fixed.id) == at.timestamp() * 1000
    assert fixed.refresh().job.run_at == at
    assert redisjobs.store.counts("default")["queued"] == 0


def test_at_front_puts_the_job_at_the_head(redisjobs: Any) -> None:
    first = jobs.add.delay(1, 1)
    urgent = jobs.add.enqueue(args=[2, 2], at_front=True)

    ready = redisjobs.client.lrange(keys.ready(redisjobs.prefix, "default"), 0, -1)
    assert ready == [urgent.id, first.id]


def test_enqueue_many_stores_all_in_one_call(redisjobs: Any) -> None:
    handles = jobs.add.enqueue_many([((i, i), {}) for i in range(100)])

    assert len({h.id for h in handles}) == 100
    assert redisjobs.store.counts("default")["queued"] == 100
    redisjobs.run_worker(concurrency=4)
    assert [h.refresh().result for h in handles[:5]] == [0, 2, 4, 6, 8]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((object(),), {}, "Positional argument 0 is <object object"),
        ((), {"when": dt.date(2026, 1, 1)}, "Keyword argument 'when' is datetime.date"),
        (
            (),
            {"amount": decimal.Decimal("1.5")},
            "Keyword argument 'amount' is Decimal",
        ),
        (({1: "a"},), {}, "Positional argument 0 has the key 1"),
        (([1, {2, 3}],), {}, r"Positional argument 0\[1\] is \{2, 3\}"),
        ((float("nan"),), {}, "Positional argument 0 is nan"),
        # A str is a sequence: it used to be stored as a list of characters.
        ("ab", {}, "^args is 'ab', not a list or tuple of positional arguments"),
        ((), [("value", 1)], r"^kwargs is \[\('value', 1\)\], not a dict"),
        # JSON turned the key into "1", and the call failed in the worker.
        ((), {1: "a"}, "^kwargs has the key 1; keyword argument names must be str"),
        # A name UTF-8 cannot carry raised UnicodeEncodeError on the way to Redis.
        ((), {"v\udcff": 1}, r"^A keyword argument name holds '\\udcff', a lone"),
    ],
)
def test_arguments_json_cannot_carry_raise_and_store_nothing(
    redisjobs: Any, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(SerializationError, match=message):
        jobs.echo.enqueue(args=args, kwargs=kwargs)
    assert redisjobs.store.counts("other")["queued"] == 0


def test_tuples_are_stored_as_lists(redisjobs: Any) -> None:
    handle = jobs.echo.delay((1, (2, 3)))
    redisjobs.run_worker(queues=("other",))
    assert handle.refresh().result == [1, [2, 3]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue": "bad queue"}, "Queue name 'bad queue' is not valid"),
        ({"queue": "{tag}"}, "Queue name '{tag}' is not valid"),
        ({"priority": 101}, "Priority 101 is outside -100..100"),
        ({"max_attempts": 0}, "max_attempts is 0"),
    ],
)
def test_invalid_options_raise_invalid_job(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidJob, match=message):
        jobs.add.using(**options)


def test_nested_function_is_rejected_at_decoration() -> None:
    with pytest.raises(UnknownBackgroundFunction, match="not a module-level function"):

        @background
        def inner() -> None:
            pass


def test_function_whose_name_does_not_lead_back_is_rejected_at_enqueue(
    redisjobs: Any,
) -> None:
    def impostor(a: int, b: int) -> int:
        return a + b

    impostor.__qualname__ = "impostor"
    impostor.__module__ = "tests.jobs"
    fn = background(impostor)
    with pytest.raises(UnknownBackgroundFunction, match="does not lead back"):
        fn.delay(1, 2)


def test_enqueue_with_redis_down_raises_a_clear_error() -> None:
    settings = {"REDIS_URL": "redis://127.0.0.1:1/0", "PREFIX": "down"}
    with (
        override_settings(REDISJOBS=settings),
        pytest.raises(RedisUnavailable, match=r"Could not store 1 job\(s\) in Redis"),
    ):
        jobs.add.delay(1, 2)


def test_handle_refresh_reads_current_state_and_load_rebuilds_it(
    redisjobs: Any,
) -> None:
    handle = jobs.add.delay(1, 2)
    loaded = JobHandle.load(handle.id, "default")
    redisjobs.run_worker()

    assert loaded.status is JobStatus.QUEUED  # a snapshot until refreshed
    assert loaded.refresh().status is JobStatus.SUCCEEDED
    assert loaded.result == 3 and loaded.error is None
    assert "status=succeeded" in repr(loaded)


def test_load_of_unknown_id_raises_job_does_not_exist(redisjobs: Any) -> None:
    with pytest.raises(JobDoesNotExist, match="'nope' does not exist in queue"):
        JobHandle.load("nope", "default")
    with pytest.raises(JobDoesNotExist, match="any queue"):
        JobHandle.load("nope")


def test_refresh_after_expiry_raises_job_does_not_exist(redisjobs: Any) -> None:
    handle = jobs.add.delay(1, 2)
    redisjobs.client.delete(keys.job(redisjobs.prefix, "default", handle.id))
    with pytest.raises(JobDoesNotExist):
        handle.refresh()


def test_wait_times_out_with_a_clear_error(redisjobs: Any) -> None:
    handle = jobs.add.delay(1, 2)
    with pytest.raises(WaitTimeout, match="still queued after 0.05 s"):
        handle.wait(timedelta(milliseconds=50))


def test_wait_on_a_finished_job_returns_at_once(redisjobs: Any) -> None:
    handle = jobs.add.delay(1, 2)
    redisjobs.run_worker()
    assert handle.refresh().wait(timedelta(seconds=0)).result == 3


def test_job_enqueued_signal_is_sent_with_the_job(redisjobs: Any) -> None:
    seen: list[str] = []

    def receiver(sender: str, job: Any, **kwargs: Any) -> None:
        seen.append(f"{sender}:{job.id}")

    signals.job_enqueued.connect(receiver)
    try:
        handle = jobs.add.delay(1, 2)
    finally:
        signals.job_enqueued.disconnect(receiver)
    assert seen == [f"tests.jobs.add:{handle.id}"]


def test_current_job_outside_a_job_raises() -> None:
    with pytest.raises(NoCurrentJob, match="outside a running job"):
        current_job()


class TestEagerMode:
    settings = {"REDIS_URL": "redis://127.0.0.1:1/0", "EAGER": True}

    def test_eager_runs_the_job_at_enqueue_without_redis(self) -> None:
        with override_settings(REDISJOBS=self.settings):
            handle = jobs.add.delay(2, 3)
        assert handle.status is JobStatus.SUCCEEDED
        assert handle.result == 5
        assert handle.progress == 1.0  # as a worker records a success
        assert handle.refresh().result == 5
        assert handle.wait().result == 5

    def test_eager_retries_and_records_the_error(self) -> None:
        with override_settings(REDISJOBS=self.settings):
            failed = jobs.always_fails.delay("nope")
            flaky = jobs.fails_then_succeeds.delay(1)
        assert failed.status is JobStatus.DEAD
        assert failed.attempts == 3
        assert failed.error is not None and failed.error.message == "nope"
        assert flaky.result == 2

    def test_eager_gives_jobs_their_context(self) -> None:
        with override_settings(REDISJOBS=self.settings):
            handle = jobs.context_info.delay()
        assert handle.result == {"id": handle.id, "attempt": 1, "queue": "default"}

    def test_eager_runs_async_jobs(self) -> None:
        with override_settings(REDISJOBS=self.settings):
            handle = jobs.async_add.delay(1, 2)
        assert handle.result == 3

    def test_eager_still_rejects_bad_arguments(self) -> None:
        with (
            override_settings(REDISJOBS=self.settings),
            pytest.raises(SerializationError),
        ):
            jobs.echo.delay(object())


def test_zero_delay_or_past_run_at_queues_at_once(redisjobs: Any) -> None:
    now = jobs.add.enqueue(args=[1, 1], delay=timedelta(0))
    past = jobs.add.enqueue(args=[1, 1], run_at=datetime(2000, 1, 1, tzinfo=UTC))

    assert now.status is JobStatus.QUEUED
    assert past.status is JobStatus.QUEUED
    assert past.refresh().status is JobStatus.QUEUED
    assert redisjobs.store.counts("default")["queued"] == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"run_at": datetime(2099, 1, 1)}, "run_at must be an aware datetime"),
        (
            {"delay": timedelta(1), "run_at": datetime(2099, 1, 1, tzinfo=UTC)},
            "either delay or run_at",
        ),
    ],
)
def test_bad_timing_arguments_raise_invalid_job(
    redisjobs: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidJob, match=message):
        jobs.add.enqueue(args=[1, 1], **kwargs)


@pytest.mark.parametrize("name", ["timeout", "result_ttl"])
def test_non_positive_durations_are_rejected(name: str) -> None:
    with pytest.raises(InvalidJob, match=f"{name} is datetime.timedelta"):
        jobs.add.using(**{name: timedelta(0)})


def test_non_positive_backoff_is_rejected_at_decoration() -> None:
    with pytest.raises(InvalidJob, match="backoff_base is"):
        background(backoff_base=timedelta(seconds=-1))(jobs.add.__wrapped__)


def test_redis_refusing_a_write_raises_redis_unavailable(
    make_redis_server: Any,
) -> None:
    server = make_redis_server(maxmemory_policy="noeviction")
    client = server.client()
    client.set("ballast", "x" * 2_000_000)
    client.config_set("maxmemory", "1mb")  # now below what the server holds
    settings = {"REDIS_URL": server.url, "PREFIX": "oom"}
    with (
        override_settings(REDISJOBS=settings),
        pytest.raises(RedisUnavailable, match="used memory > .maxmemory."),
    ):
        jobs.add.delay(1, 2)


def test_ids_made_in_one_millisecond_still_sort_in_creation_order() -> None:
    from django_redisjobs.job import new_job_id

    ids = [new_job_id(1_700_000_000_000) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000


def test_a_forked_child_makes_ids_of_its_own() -> None:
    from django_redisjobs.job import new_job_id

    # Both go on from the same sequence number: only the random bits differ.
    child_id = in_forked_child(lambda: new_job_id(1_700_000_000_000))
    parent_id = new_job_id(1_700_000_000_000)
    assert child_id[:18] == parent_id[:18]
    assert child_id != parent_id


def test_a_forked_child_enqueues_on_a_connection_of_its_own(
    redisjobs: Any,
) -> None:
    jobs.add.delay(1, 2)
    jobs.add.delay(1, 2)  # the script's connection now waits for the next call

    def enqueue_and_count() -> str:
        jobs.add.delay(3, 4)
        with redisjobs.server.client() as admin:
            clients = admin.client_list()
        return str(sum(c["cmd"] == "evalsha" for c in clients))

    # Sharing the parent's socket would leave one client behind the two calls.
    assert in_forked_child(enqueue_and_count) == "2"
    handle = jobs.add.delay(5, 6)
    assert handle.refresh().job.args == [5, 6]
