"""Property: a job hash with any field values, claimed by a real worker, ends in
a visible state, or is dropped without a trace; the worker keeps working, and the
valid job next to it succeeds.

Each example enqueues two jobs in the suite's real Redis under a key prefix of
its own, then overwrites (or deletes) any of the enqueue fields of one of them,
plus ``status`` and ``attempts``, with arbitrary text. The hash stays at its
key and its id in the queue's ready list, as after a hand edit or damage in
place. An in-process burst worker then runs in a thread that must end.

"Visible" means that the planted hash, if it is still there, has a status that
names the one collection holding its id (a finished job may also be in none: a
cancelled hash put back in a list is dropped, as claim_jobs.lua says); never
``active`` or ``queued`` with its id nowhere. A hash that is gone leaves its id in
no collection but, until the scheduler trims it, the finished set it ended in.

Examples (Hypothesis with ``database=None``: nothing is written to disk): 50,
each running a worker, about 4 s on two shared cores.

Two cases it found first are now reported by claim_jobs.lua and end the job dead
with a reason naming the field: a huge, fractional or non-finite ``attempts``
count, and field values (or names) that are not UTF-8, which used to fail the
decoding of the whole claimed batch. Tests for each are at the end of this module.
"""

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_redisjobs import InvalidJob, JobStatus, keys
from django_redisjobs.job import ENQUEUE_FIELDS
from django_redisjobs.queue import get_store
from tests import jobs
from tests.conftest import RedisJobs, suite_settings
from tests.servers import RedisServer

Q = "default"
WORKER_DEADLINE_S = 30
COLLECTIONS = ("ready", "prioritized", "scheduled", "active", "succeeded", "dead")
# Where a job of each status sits once a worker has stopped.
HOME: dict[str, set[tuple[str, ...]]] = {
    "queued": {("ready",), ("prioritized",)},
    "scheduled": {("scheduled",)},
    "retrying": {("scheduled",)},
    "succeeded": {("succeeded",)},
    "dead": {("dead",)},
    "cancelled": {(), ("cancelled",)},
}
_prefixes = itertools.count()

numbers = st.sampled_from(
    [
        "",
        "0",
        "1",
        "-1",
        "2.5",
        "nan",
        "inf",
        "-inf",
        "1e20",
        "1e400",
        "99999999999999999999",
        "0x10",
        " 1",
        "1_000",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: int() reads it, Lua does not
        "253402300800000",  # year 10000 in ms
    ]
)
json_texts = st.sampled_from(
    [
        "[1,2]",
        "[]",
        "{}",
        '{"a":1}',
        '{"b":2,"a":1}',
        "null",
        '"x"',
        "[1,2,3]",
        '["a","b"]',
        "[" * 5_000 + "]" * 5_000,
        "[1e400]",
        "{not json",
    ]
)
statuses = st.sampled_from([status.value for status in JobStatus])
funcs = st.sampled_from(
    ["tests.jobs.add", "tests.jobs.echo", "tests.jobs.always_fails", "tests.jobs.no"]
)
texts = st.text(max_size=20)
any_value = st.one_of(numbers, json_texts, statuses, funcs, texts)


attempts_values = st.one_of(numbers, json_texts, statuses, funcs, texts)
by_field: dict[str, st.SearchStrategy[str]] = {
    "attempts": attempts_values,
    "id": st.sampled_from(["", "someone-else", "f" * 32]) | texts,
    "queue": st.sampled_from(["", "default", "other", "de fault"]) | texts,
    "func": funcs | texts,
    "args": json_texts | texts,
    "kwargs": json_texts | texts,
    "status": statuses | texts,
}
FIELDS = sorted({*ENQUEUE_FIELDS, "status", "attempts"})


@st.composite
def damage(draw: st.DrawFn) -> dict[str, str | None]:
    """New values for some fields of a hash; None deletes the field."""
    names = draw(st.sets(st.sampled_from(FIELDS), min_size=1, max_size=4))
    return {
        name: draw(st.none() | by_field.get(name, numbers | any_value))
        for name in sorted(names)
    }


@pytest.fixture
def fresh_prefix(redis_server: RedisServer) -> Iterator[Any]:
    """Enter REDISJOBS settings with a key prefix no other example uses."""

    def enter() -> Any:
        prefix = f"fuzzhash{next(_prefixes)}"
        settings = suite_settings(redis_server, prefix)
        return override_settings(REDISJOBS=settings), RedisJobs(
            redis_server, prefix, settings
        )

    yield enter


def run_worker_in_thread(redisjobs: RedisJobs) -> None:
    """Run a burst worker; it must return, without raising, before the deadline."""
    worker = redisjobs.worker()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=target, name="fuzz-worker")
    thread.start()
    thread.join(timeout=WORKER_DEADLINE_S)
    if thread.is_alive():
        worker.request_stop()
        thread.join(timeout=WORKER_DEADLINE_S)
        pytest.fail("the burst worker did not return")
    assert not errors, f"the worker crashed: {errors[0]!r}"


def places(prefix: str, job_id: str) -> tuple[str, ...]:
    """The collections of every known queue that hold `job_id`."""
    client = get_store().client
    found = []
    for queue in sorted({Q, *get_store().known_queues()}):
        if job_id in client.lrange(keys.ready(prefix, queue), 0, -1):
            found.append("ready")
        for name in (*COLLECTIONS[1:], "cancelled"):
            if client.zscore(getattr(keys, name)(prefix, queue), job_id) is not None:
                found.append(name)
    return tuple(found)


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    # The fixture only hands out a factory; each example enters its own prefix.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(changes=damage(), planted_first=st.booleans())
def test_a_damaged_hash_ends_visibly_and_the_worker_runs_the_next_job(
    fresh_prefix: Any, changes: dict[str, str | None], planted_first: bool
) -> None:
    entered, redisjobs = fresh_prefix()
    with entered:
        if planted_first:
            planted, good = jobs.add.delay(1, 2), jobs.add.delay(3, 4)
        else:
            good, planted = jobs.add.delay(3, 4), jobs.add.delay(1, 2)
        key = keys.job(redisjobs.prefix, Q, planted.id)
        client = redisjobs.client
        for name, value in changes.items():
            if value is None:
                client.hdel(key, name)
            else:
                client.hset(key, name, value)

        run_worker_in_thread(redisjobs)

        good_now = good.refresh()
        assert (good_now.status, good_now.result) == (JobStatus.SUCCEEDED, 7)
        assert places(redisjobs.prefix, good.id) == ("succeeded",)
        after = client.hgetall(key)
        where = places(redisjobs.prefix, planted.id)
        if not after:
            # A hash that expired (a result_ttl_ms of 1) leaves its id in its
            # finished set until the scheduler trims it; nowhere else.
            assert where in {(), ("succeeded",), ("dead",), ("cancelled",)}, where
        else:
            status = after.get("status")
            assert where in HOME.get(status or "", set()), (status, where, after)
        assert client.zcard(keys.active(redisjobs.prefix, Q)) == 0


# -- damage the claim script reports (issue 13 §5) ---------------------------------


@pytest.mark.parametrize(
    "attempts", ["nan", "inf", "-inf", "1e20", "99999999999999999", "2.5"]
)
def test_a_huge_or_non_finite_attempts_count_ends_the_job_dead(
    redisjobs: RedisJobs, attempts: str
) -> None:
    planted, good = jobs.add.delay(1, 2), jobs.add.delay(3, 4)
    key = keys.job(redisjobs.prefix, Q, planted.id)
    redisjobs.client.hset(key, "attempts", attempts)

    run_worker_in_thread(redisjobs)

    assert good.refresh().result == 7
    assert redisjobs.client.hget(key, "status") == "dead"
    assert places(redisjobs.prefix, planted.id) == ("dead",)
    assert redisjobs.client.hget(key, "error_message") == (
        f"Job {planted.id!r} has a corrupt field 'attempts' in Redis: "
        "not a whole number below 2^53."
    )


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("note", b"\xff", "note"),
        ("args", b'["\xc3\x28"]', "args"),  # a lead byte, then no continuation
        ("kwargs", b'{"a":"\xed\xa0\x80"}', "kwargs"),  # a surrogate
        ("func", b"tests.jobs.add\xf4\x90\x80\x80", "func"),  # past U+10FFFF
        (b"n\xc0\xafte", b"x", "?"),  # an overlong form, in the field's name
    ],
)
def test_a_field_that_is_not_utf8_fails_only_its_own_job(
    redisjobs: RedisJobs, name: str | bytes, value: bytes, named: str
) -> None:
    planted, good = jobs.add.delay(1, 2), jobs.add.delay(3, 4)
    key = keys.job(redisjobs.prefix, Q, planted.id)
    redisjobs.client.hset(key, name, value)  # type: ignore[arg-type]

    run_worker_in_thread(redisjobs)

    assert good.refresh().result == 7
    assert redisjobs.client.zcard(keys.active(redisjobs.prefix, Q)) == 0
    assert redisjobs.client.hget(key, "status") == "dead"
    assert places(redisjobs.prefix, planted.id) == ("dead",)
    message = redisjobs.client.hget(key, "error_message")
    assert message is not None and f"corrupt field {named!r}" in message


def test_valid_non_ascii_text_is_claimed_as_it_is(redisjobs: RedisJobs) -> None:
    text = "Zürich · 東京 · 🙂"
    handle = jobs.echo.enqueue((text,), queue=Q)

    run_worker_in_thread(redisjobs)

    assert handle.refresh().result == text


def test_reading_a_job_with_a_field_that_is_not_utf8_names_the_fault(
    redisjobs: RedisJobs,
) -> None:
    handle = jobs.add.delay(1, 2)
    redisjobs.client.hset(keys.job(redisjobs.prefix, Q, handle.id), "note", b"\xff")

    with pytest.raises(InvalidJob, match="not UTF-8"):
        handle.refresh()
    with pytest.raises(InvalidJob, match="not UTF-8"):
        redisjobs.store.get_many([handle.id], Q)
