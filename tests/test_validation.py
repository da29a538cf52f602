"""Options are checked at the door: decoration, ``using()`` and ``enqueue()``.

Each refused value used to be accepted and fail later (in a worker thread, or when
the job was read back), or to fail with a raw Python error. None of these tests
needs Redis: a refused call never reaches it, and accepted calls run in eager
mode.
"""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from django_redisjobs import InvalidCronEntry, InvalidJob, JobStatus, background
from django_redisjobs.job import MAX_DURATION
from django_redisjobs.job_hash import enqueue_fields, from_fields
from tests import jobs

EAGER = {"REDIS_URL": "redis://127.0.0.1:1/0", "EAGER": True}
bounded = settings(max_examples=150, deadline=None, database=None)


def undecorated() -> None:
    """A module-level function that the tests try to decorate with bad options."""


def decorate(**options: Any) -> Any:
    return background(**options)(undecorated)


@pytest.fixture
def eager() -> Iterator[None]:
    with override_settings(REDISJOBS=EAGER):
        yield


# -- retry_on / no_retry_on -----------------------------------------------------


@pytest.mark.parametrize("name", ["retry_on", "no_retry_on"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (("x",), "holds 'x', which is not an exception class"),
        ((ValueError, int), "holds <class 'int'>, which is not an exception class"),
        ((ValueError(),), r"holds ValueError\(\), which is not an exception class"),
        (ValueError, "is <class 'ValueError'>, not a tuple"),
        ([ValueError], r"is \[<class 'ValueError'>\], not a tuple"),
    ],
)
def test_retry_classes_must_be_a_tuple_of_exception_classes(
    name: str, value: Any, message: str
) -> None:
    with pytest.raises(InvalidJob, match=f"^{name} {message}; use a tuple"):
        decorate(**{name: value})


def test_base_exception_subclasses_are_accepted_in_retry_on() -> None:
    fn = decorate(retry_on=(KeyboardInterrupt, OSError), no_retry_on=())
    assert fn.spec.retry_on == (KeyboardInterrupt, OSError)


@pytest.mark.parametrize("name", ["retry_on", "no_retry_on", "backoff_base", "jitter"])
def test_using_refuses_the_options_only_the_decorator_sets(name: str) -> None:
    value = {"backoff_base": timedelta(1), "jitter": True}.get(name, ("x",))
    with pytest.raises(InvalidJob, match=rf"^using\(\) got {name}=.*Pass it to"):
        jobs.add.using(**{name: value})


def test_jitter_must_be_a_bool() -> None:
    with pytest.raises(InvalidJob, match="^jitter is 'yes'; use True, False or None"):
        decorate(jitter="yes")


# -- priority and max_attempts --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1.5, r"Priority 1.5 is not an int; use an int from -100 to 100\."),
        ("5", r"Priority '5' is not an int"),
        (True, r"Priority True is not an int"),
        (101, r"Priority 101 is outside -100..100\."),
    ],
)
def test_priority_must_be_an_int_in_range_everywhere(value: Any, message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        decorate(priority=value)
    with pytest.raises(InvalidJob, match=message):
        jobs.add.using(priority=value)
    with pytest.raises(InvalidJob, match=message):
        jobs.add.enqueue(args=[1, 2], priority=value)


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "3", 1_000_001])
def test_max_attempts_must_be_an_int_from_1_to_the_limit(value: Any) -> None:
    message = re.escape(f"max_attempts is {value!r}; use an int from 1 to 1000000.")
    with pytest.raises(InvalidJob, match=message):
        decorate(max_attempts=value)
    with pytest.raises(InvalidJob, match=message):
        jobs.add.using(max_attempts=value)


# -- durations ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["timeout", "result_ttl", "unique_for"])
def test_a_duration_under_one_ms_is_refused(name: str) -> None:
    # It would be stored as 0 ms, which the hash reads as "not set": no limit.
    message = (
        rf"^{name} is datetime.timedelta\(microseconds=999\); use a positive "
        "timedelta of at least 1 ms"
    )
    with pytest.raises(InvalidJob, match=message):
        decorate(**{name: timedelta(microseconds=999)})
    with pytest.raises(InvalidJob, match=message):
        jobs.add.using(**{name: timedelta(microseconds=999)})


@pytest.mark.parametrize(
    "name", ["timeout", "result_ttl", "unique_for", "backoff_base", "backoff_max"]
)
def test_a_duration_longer_than_the_limit_is_refused(name: str) -> None:
    with pytest.raises(InvalidJob, match=rf"^{name} is .*at most datetime.timedelta"):
        decorate(**{name: timedelta.max})


@pytest.mark.parametrize("value", [5, 5.0, "5s"])
def test_a_duration_must_be_a_timedelta(value: Any) -> None:
    message = f"^timeout is {re.escape(repr(value))}, not a timedelta"
    with pytest.raises(InvalidJob, match=message):
        decorate(timeout=value)
    with pytest.raises(InvalidJob, match=message):
        jobs.add.using(timeout=value)


def test_unique_for_at_the_limit_still_gives_a_readable_window(eager: None) -> None:
    handle = jobs.add.enqueue(args=[1, 2], unique_for=MAX_DURATION)
    assert handle.job.unique_until is not None


# -- delay and run_at -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay": 5}, r"^delay is 5, not a timedelta; use one such as"),
        ({"delay": timedelta.max}, r"^delay is datetime.timedelta\(days=999999999"),
        (
            {"run_at": datetime.max.replace(tzinfo=UTC)},
            r"^run_at is datetime.datetime\(9999, .*; use a time at most",
        ),
        ({"run_at": "2030-01-01"}, r"^run_at is '2030-01-01', not a datetime"),
        ({"run_at": datetime(2030, 1, 1)}, "^run_at must be an aware datetime"),
    ],
)
def test_bad_timing_is_refused_with_invalid_job(
    eager: None, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidJob, match=message):
        jobs.add.enqueue(args=[1, 2], **kwargs)


class _DayLongOffset(tzinfo):
    """A broken time zone: UTC offsets must stay within a day."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=25)


def test_run_at_in_a_broken_time_zone_is_refused(eager: None) -> None:
    run_at = datetime(2030, 1, 1, tzinfo=_DayLongOffset())
    with pytest.raises(InvalidJob, match="whose time zone gives no valid UTC offset"):
        jobs.add.enqueue(args=[1, 2], run_at=run_at)


def test_far_past_or_negative_timing_means_now(eager: None) -> None:
    oldest = datetime.min.replace(tzinfo=timezone(timedelta(hours=14)))
    for kwargs in ({"delay": timedelta.min}, {"run_at": oldest}):
        assert jobs.add.enqueue(args=[1, 2], **kwargs).result == 3


def test_at_front_must_be_a_bool(eager: None) -> None:
    with pytest.raises(InvalidJob, match="^at_front is 1; use True or False"):
        jobs.add.enqueue(args=[1, 2], at_front=1)


def test_unique_must_be_a_bool() -> None:
    with pytest.raises(InvalidJob, match="^unique is 'yes'; use True or False"):
        jobs.add.using(unique="yes")


# -- names ----------------------------------------------------------------------


def test_a_queue_name_ending_in_a_newline_is_refused() -> None:
    message = r"^Queue name 'default\\n' is not valid"
    with pytest.raises(InvalidJob, match=message):
        decorate(queue="default\n")
    with pytest.raises(InvalidJob, match=message):
        jobs.add.enqueue(args=[1, 2], queue="default\n")


def test_a_queue_name_that_is_not_a_str_is_refused() -> None:
    with pytest.raises(InvalidJob, match="^Queue name 5 is not valid"):
        jobs.add.using(queue=5)


def test_a_cron_schedule_that_is_not_a_str_is_refused() -> None:
    with pytest.raises(InvalidCronEntry, match="has the schedule 5; use a cron"):
        decorate(cron=5)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("queue", "^Queue name <an int of 16610 bits> is not valid"),
        ("priority", r"^Priority <an int of 16610 bits> is outside -100\.\.100"),
        ("delay", "^delay is <an int of 16610 bits>, not a timedelta"),
        ("run_at", "^run_at is <an int of 16610 bits>, not a datetime"),
        ("at_front", "^at_front is <an int of 16610 bits>; use True or False"),
        ("unique_key", "^unique_key <an int of 16610 bits> is not valid"),
        ("unique_for", "^unique_for is <an int of 16610 bits>, not a timedelta"),
    ],
)
def test_an_int_too_long_to_show_is_refused_with_invalid_job(
    eager: None, name: str, message: str
) -> None:
    # Building the message used to raise ValueError: Python will not write an int
    # of more than 4,300 digits as text.
    with pytest.raises(InvalidJob, match=message):
        jobs.add.enqueue(args=[1, 2], **{name: 10**5000})


def test_a_unique_key_with_a_lone_surrogate_is_refused(eager: None) -> None:
    # It used to raise UnicodeEncodeError on its way to Redis, or at commit.
    with pytest.raises(InvalidJob, match=r"holds '\\udcff', a lone surrogate"):
        jobs.add.enqueue(args=[1, 2], unique_key="key \udcff")


# -- every option, any value ----------------------------------------------------

any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.timedeltas(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.tuples(st.sampled_from([ValueError, int, "x"])),
)
OPTIONS = [
    "queue",
    "priority",
    "delay",
    "run_at",
    "at_front",
    "unique",
    "unique_key",
    "unique_for",
]


@bounded
@given(name=st.sampled_from(OPTIONS), value=any_value)
def test_any_enqueue_option_gives_invalid_job_or_a_job_that_reads_back(
    name: str, value: Any
) -> None:
    with override_settings(REDISJOBS=EAGER):
        try:
            handle = jobs.add.enqueue(args=[1, 2], **{name: value})
        except InvalidJob:
            return
    job = handle.job
    assert handle.status is JobStatus.SUCCEEDED
    fields = {k: str(v) for k, v in enqueue_fields(job, "[1,2]", "{}").items()}
    read_back = from_fields({**fields, "status": "queued"})
    assert (read_back.queue, read_back.priority) == (job.queue, job.priority)
    assert read_back.run_at == job.run_at
    assert read_back.unique_until == job.unique_until


@bounded
@given(
    name=st.sampled_from(
        ["queue", "priority", "max_attempts", "timeout", "result_ttl", "unique_for"]
    ),
    value=any_value,
)
def test_any_using_option_gives_invalid_job_or_a_usable_copy(
    name: str, value: Any
) -> None:
    try:
        copy = jobs.add.using(**{name: value})
    except InvalidJob:
        return
    with override_settings(REDISJOBS=EAGER):
        assert copy.delay(1, 2).result == 3
