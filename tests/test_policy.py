"""The option and failure rules of `policy`: pure, so no Redis and no clock."""

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from django_redisjobs.conf import Settings
from django_redisjobs.exceptions import (
    JobCancelled,
    JobTimeout,
    Retry,
    SerializationError,
    UnknownBackgroundFunction,
)
from django_redisjobs.job import MAX_DURATION, JobStatus
from django_redisjobs.policy import (
    FailedAt,
    JobOptions,
    Verdict,
    after_failure,
    end_ttl,
    resolve_options,
    retry_policy,
)
from django_redisjobs.registry import FunctionSpec
from django_redisjobs.retry import RetryPolicy

# Bounded so the whole suite stays quick; no example database in the work tree.
bounded = settings(max_examples=200, deadline=None, database=None)

SETTINGS = Settings(
    redis_url=None,
    cache_alias=None,
    default_queue="from-settings",
    max_attempts=4,
    backoff_base=timedelta(seconds=3),
    backoff_max=timedelta(minutes=5),
    backoff_jitter=False,
    timeout=timedelta(seconds=40),
    result_ttl=timedelta(hours=2),
    dead_ttl=timedelta(days=3),
)


def _noop() -> None:
    """Stands in for a background function."""


def spec(**options: Any) -> FunctionSpec:
    return FunctionSpec("tests.test_policy._noop", _noop, is_async=False, **options)


def fixed(value: float) -> Any:
    return lambda: value


# -- resolve_options ------------------------------------------------------------


def test_settings_fill_every_option_the_decorator_leaves_unset() -> None:
    options = resolve_options(spec(), JobOptions(), SETTINGS)

    assert options.queue == "from-settings"
    assert options.priority == 0
    assert options.max_attempts == 4
    assert options.timeout == timedelta(seconds=40)
    assert options.result_ttl == timedelta(hours=2)
    assert options.unique is False and options.unique_for is None


def test_the_decorator_wins_over_the_settings() -> None:
    decorated = spec(
        queue="emails",
        priority=-5,
        max_attempts=9,
        timeout=timedelta(seconds=1),
        result_ttl=timedelta(minutes=1),
    )

    options = resolve_options(decorated, JobOptions(), SETTINGS)

    assert (options.queue, options.priority, options.max_attempts) == ("emails", -5, 9)
    assert options.timeout == timedelta(seconds=1)
    assert options.result_ttl == timedelta(minutes=1)


def test_the_call_wins_over_the_decorator() -> None:
    decorated = spec(queue="emails", priority=-5, max_attempts=9)
    call = JobOptions(queue="urgent", priority=0, max_attempts=1)

    options = resolve_options(decorated, call, SETTINGS)

    # priority=0 from the call is a value, not "unset".
    assert (options.queue, options.priority, options.max_attempts) == ("urgent", 0, 1)


def test_no_timeout_anywhere_means_no_limit() -> None:
    no_limit = Settings(redis_url=None, cache_alias=None, timeout=None)
    assert resolve_options(spec(), JobOptions(), no_limit).timeout is None


@pytest.mark.parametrize(
    ("decorator", "call", "unique", "unique_for"),
    [
        ({}, {}, False, None),
        ({"unique": True}, {}, True, None),
        ({"unique_for": timedelta(minutes=1)}, {}, True, timedelta(minutes=1)),
        ({"unique": True}, {"unique": False}, False, None),
        ({}, {"unique_for": timedelta(seconds=5)}, True, timedelta(seconds=5)),
        (
            {"unique_for": timedelta(minutes=1)},
            {"unique_for": timedelta(seconds=5)},
            True,
            timedelta(seconds=5),
        ),
    ],
)
def test_unique_comes_from_the_call_else_the_decorator(
    decorator: dict[str, Any],
    call: dict[str, Any],
    unique: bool,
    unique_for: timedelta | None,
) -> None:
    options = resolve_options(spec(**decorator), JobOptions(**call), SETTINGS)
    assert (options.unique, options.unique_for) == (unique, unique_for)


maybe_int = st.none() | st.integers(-100, 100)
maybe_duration = st.none() | st.timedeltas(timedelta(milliseconds=1), MAX_DURATION)
maybe_queue = st.none() | st.sampled_from(["a", "b.c", "d-e_f"])


@bounded
@given(
    layers=st.tuples(maybe_queue, maybe_queue),
    priorities=st.tuples(maybe_int, maybe_int),
    attempts=st.tuples(st.none() | st.integers(1, 50), st.none() | st.integers(1, 50)),
    timeouts=st.tuples(maybe_duration, maybe_duration),
    ttls=st.tuples(maybe_duration, maybe_duration),
)
def test_each_option_is_the_first_layer_that_sets_it(
    layers: tuple[str | None, str | None],
    priorities: tuple[int | None, int | None],
    attempts: tuple[int | None, int | None],
    timeouts: tuple[timedelta | None, timedelta | None],
    ttls: tuple[timedelta | None, timedelta | None],
) -> None:
    call = JobOptions(
        queue=layers[0],
        priority=priorities[0],
        max_attempts=attempts[0],
        timeout=timeouts[0],
        result_ttl=ttls[0],
    )
    decorated = spec(
        queue=layers[1],
        priority=priorities[1],
        max_attempts=attempts[1],
        timeout=timeouts[1],
        result_ttl=ttls[1],
    )

    options = resolve_options(decorated, call, SETTINGS)

    def first(pair: tuple[Any, Any], default: Any) -> Any:
        return next((v for v in pair if v is not None), default)

    assert options.queue == first(layers, SETTINGS.default_queue)
    assert options.priority == first(priorities, 0)
    assert options.max_attempts == first(attempts, SETTINGS.max_attempts)
    assert options.timeout == first(timeouts, SETTINGS.timeout)
    assert options.result_ttl == first(ttls, SETTINGS.result_ttl)


# -- retry_policy ---------------------------------------------------------------


def test_an_unknown_function_gets_the_settings_policy_and_the_jobs_limit() -> None:
    policy = retry_policy(None, 7, SETTINGS)

    assert policy == RetryPolicy(
        max_attempts=7,
        backoff_base=timedelta(seconds=3),
        backoff_max=timedelta(minutes=5),
        jitter=False,
    )


def test_the_decorator_overrides_the_settings_field_by_field() -> None:
    decorated = spec(
        max_attempts=9,
        backoff_base=timedelta(seconds=1),
        jitter=True,
        retry_on=(OSError,),
        no_retry_on=(FileNotFoundError,),
    )

    policy = retry_policy(decorated, 2, SETTINGS)

    # The job's stored limit, not the decorator's current one.
    assert policy.max_attempts == 2
    assert policy.backoff_base == timedelta(seconds=1)
    assert policy.backoff_max == timedelta(minutes=5)
    assert policy.jitter is True
    assert policy.retry_on == (OSError,)
    assert policy.no_retry_on == (FileNotFoundError,)


def test_jitter_false_on_the_decorator_is_kept_over_settings_true() -> None:
    jittery = Settings(redis_url=None, cache_alias=None, backoff_jitter=True)
    assert retry_policy(spec(jitter=False), 3, jittery).jitter is False


# -- after_failure --------------------------------------------------------------

POLICY = RetryPolicy(
    max_attempts=3,
    backoff_base=timedelta(seconds=2),
    backoff_max=timedelta(seconds=5),
    jitter=False,
)


def test_a_failure_with_attempts_left_is_retried_after_the_backoff() -> None:
    assert after_failure(ValueError("x"), 1, POLICY) == Verdict(
        JobStatus.RETRYING, timedelta(seconds=2)
    )
    assert after_failure(ValueError("x"), 2, POLICY) == Verdict(
        JobStatus.RETRYING, timedelta(seconds=4)
    )


def test_the_last_attempt_ends_dead() -> None:
    assert after_failure(ValueError("x"), 3, POLICY) == Verdict(JobStatus.DEAD)


def test_a_timeout_follows_the_retry_policy() -> None:
    verdict = after_failure(JobTimeout("late"), 1, POLICY)
    assert verdict.status is JobStatus.RETRYING


def test_job_cancelled_ends_cancelled_even_with_attempts_left() -> None:
    assert after_failure(JobCancelled(), 1, POLICY) == Verdict(JobStatus.CANCELLED)


@pytest.mark.parametrize(
    ("exc", "failed_at"),
    [
        (SerializationError("The return value is {1}."), FailedAt.RESULT),
        (UnknownBackgroundFunction("gone"), FailedAt.LOAD),
    ],
)
def test_a_result_or_load_failure_is_dead_at_once(
    exc: BaseException, failed_at: FailedAt
) -> None:
    assert after_failure(exc, 1, POLICY, failed_at=failed_at) == Verdict(JobStatus.DEAD)


def test_a_serialization_error_raised_by_job_code_is_retried() -> None:
    verdict = after_failure(SerializationError("inner enqueue"), 1, POLICY)
    assert verdict.status is JobStatus.RETRYING


def test_no_retry_on_and_retry_on_pick_what_is_retried() -> None:
    picky = RetryPolicy(retry_on=(OSError,), no_retry_on=(FileNotFoundError,))

    assert after_failure(OSError(), 1, picky).status is JobStatus.RETRYING
    assert after_failure(FileNotFoundError(), 1, picky).status is JobStatus.DEAD
    assert after_failure(ValueError(), 1, picky).status is JobStatus.DEAD
    assert after_failure(Retry(), 1, picky).status is JobStatus.RETRYING


def test_exceptions_outside_exception_are_not_retried() -> None:
    assert after_failure(SystemExit(1), 1, POLICY) == Verdict(JobStatus.DEAD)
    assert after_failure(KeyboardInterrupt(), 1, POLICY) == Verdict(JobStatus.DEAD)


def test_jitter_scales_the_wait_with_the_random_source() -> None:
    jittery = RetryPolicy(backoff_base=timedelta(seconds=2), jitter=True)

    low = after_failure(ValueError(), 1, jittery, rand=fixed(0.0))
    high = after_failure(ValueError(), 1, jittery, rand=fixed(0.999))

    assert low.retry_in == timedelta(seconds=1)
    assert high.retry_in is not None
    assert timedelta(seconds=1.99) < high.retry_in < timedelta(seconds=2)


def test_retry_with_a_delay_waits_that_long_within_bounds() -> None:
    assert after_failure(Retry(timedelta(hours=2)), 1, POLICY).retry_in == timedelta(
        hours=2
    )
    assert after_failure(Retry(timedelta(seconds=-5)), 1, POLICY).retry_in == (
        timedelta(0)
    )
    assert after_failure(Retry(timedelta.max), 1, POLICY).retry_in == MAX_DURATION


exceptions = st.sampled_from(
    [
        ValueError("v"),
        OSError("o"),
        FileNotFoundError("f"),
        JobTimeout("t"),
        Retry(),
        Retry(timedelta(seconds=30)),
        JobCancelled(),
        SystemExit(2),
    ]
)
policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 10),
    backoff_base=st.timedeltas(timedelta(milliseconds=1), timedelta(hours=1)),
    backoff_max=st.timedeltas(timedelta(milliseconds=1), timedelta(days=1)),
    jitter=st.booleans(),
    retry_on=st.sampled_from([(), (OSError,), (ValueError, JobTimeout)]),
    no_retry_on=st.sampled_from([(), (FileNotFoundError,)]),
)


@bounded
@given(
    exc=exceptions,
    attempt=st.integers(1, 12),
    policy=policies,
    failed_at=st.sampled_from(FailedAt),
    rand=st.floats(0, 1, exclude_max=True),
)
def test_every_verdict_is_an_end_state_or_a_bounded_retry(
    exc: BaseException,
    attempt: int,
    policy: RetryPolicy,
    failed_at: FailedAt,
    rand: float,
) -> None:
    verdict = after_failure(exc, attempt, policy, failed_at=failed_at, rand=fixed(rand))

    if isinstance(exc, JobCancelled):
        assert verdict == Verdict(JobStatus.CANCELLED)
    elif failed_at is not FailedAt.RUN or attempt >= policy.max_attempts:
        assert verdict == Verdict(JobStatus.DEAD)
    elif verdict.status is JobStatus.RETRYING:
        assert verdict.retry_in is not None
        assert timedelta(0) <= verdict.retry_in <= MAX_DURATION
        if not isinstance(exc, Retry) or exc.delay is None:
            assert verdict.retry_in <= policy.backoff_max
    else:
        assert verdict == Verdict(JobStatus.DEAD)
        assert not isinstance(exc, Retry)


# -- end_ttl --------------------------------------------------------------------


def test_a_dead_job_keeps_the_dead_ttl_whatever_its_result_ttl() -> None:
    assert end_ttl(JobStatus.DEAD, timedelta(minutes=1), SETTINGS) == timedelta(days=3)


@pytest.mark.parametrize(
    "status", [JobStatus.SUCCEEDED, JobStatus.CANCELLED, JobStatus.QUEUED]
)
def test_other_ends_keep_the_jobs_result_ttl_else_the_settings(
    status: JobStatus,
) -> None:
    assert end_ttl(status, timedelta(minutes=1), SETTINGS) == timedelta(minutes=1)
    assert end_ttl(status, None, SETTINGS) == timedelta(hours=2)
