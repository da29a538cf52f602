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

Two cases it found are not what issue 13 §5 asks for yet: a huge or non-finite
``attempts`` count (the scripts read it as absent and the job runs once), and
field values that are not UTF-8 (the claimed batch fails to decode). The property
keeps clear of them, and a strict xfail test for each, at the end of this module,
starts passing once it is fixed (issue 13 §5: a dead job whose reason names the
field).
"""

import itertools
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_redisjobs import JobStatus, keys
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


def lua_reads_as_huge(text: str) -> bool:
    """Whether Lua's tonumber() (strtod: "INF", "nan", hex, spaces) reads `text`
    as a number that is not finite or at least 10**17."""
    text = text.strip()
    try:
        if text.lower().lstrip("+-").startswith("0x"):
            number = float.fromhex(text)
        else:
            number = float(text)
    except (ValueError, OverflowError):
        return False
    return not math.isfinite(number) or abs(number) >= 1e17


# claim_jobs.lua adds 1 to a stored attempts count and writes it back as a Lua
# number; for nan, +-inf and counts from about 10**17 on ("1e+17"), that text
# differs from the attempt number the claim reports ('%.0f'), so
# finish_jobs.lua never recognises the worker's outcome and the job stays active
# until its lease runs out. That is a bug in lua/ (described, not fixed, here;
# see test_a_huge_or_non_finite_attempts_count_is_recorded below): these values
# are kept out of the attempts field so the property checks everything else.
attempts_values = st.one_of(numbers, json_texts, statuses, funcs, texts).filter(
    lambda value: not lua_reads_as_huge(value)
)
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


# -- known bugs, described in the report of issue 13 §7 ---------------------------


@pytest.mark.xfail(
    strict=True,
    reason="the scripts read an attempts count that is not a whole number below "
    "2**53 as absent, so the job runs (once) and succeeds; issue 13 §5 asks for "
    "a dead job whose reason names the field",
)
@pytest.mark.parametrize(
    "attempts", ["nan", "inf", "-inf", "1e20", "99999999999999999"]
)
def test_a_huge_or_non_finite_attempts_count_is_recorded(
    redisjobs: RedisJobs, attempts: str
) -> None:
    planted, good = jobs.add.delay(1, 2), jobs.add.delay(3, 4)
    key = keys.job(redisjobs.prefix, Q, planted.id)
    redisjobs.client.hset(key, "attempts", attempts)

    run_worker_in_thread(redisjobs)

    assert good.refresh().result == 7
    assert redisjobs.client.hget(key, "status") == "dead"
    assert places(redisjobs.prefix, planted.id) == ("dead",)


@pytest.mark.xfail(
    strict=True,
    reason="the claim's reply decodes as UTF-8 (decode_responses): one field of "
    "invalid bytes fails the whole claimed batch, whose jobs all stay active",
)
def test_a_field_that_is_not_utf8_fails_only_its_own_job(redisjobs: RedisJobs) -> None:
    planted, good = jobs.add.delay(1, 2), jobs.add.delay(3, 4)
    key = keys.job(redisjobs.prefix, Q, planted.id)
    redisjobs.client.hset(key, "note", b"\xff")

    run_worker_in_thread(redisjobs)

    assert good.refresh().result == 7
    assert redisjobs.client.zcard(keys.active(redisjobs.prefix, Q)) == 0
