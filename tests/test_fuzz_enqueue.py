"""Property: ``enqueue()`` with any option values either stores a job that reads
back from Redis with the fields asked for, in the collection its status names,
or raises `InvalidJob`, `SerializationError` or `UnknownBackgroundFunction`,
never a raw Python error; and a job enqueued before it is left as it was.

Each example runs against the suite's real Redis under a key prefix of its own,
so unique keys and queue contents never leak from one example to the next.
`test_validation.py` fuzzes one option at a time in eager mode; this one mixes
them all and reads the job back from Redis.

Examples (Hypothesis with ``database=None``: nothing is written to disk):
any options together, 200, 4 to 6 s on two shared cores.
"""

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_redisjobs import InvalidJob, JobStatus, SerializationError, keys
from django_redisjobs.exceptions import UnknownBackgroundFunction
from django_redisjobs.job import MAX_DURATION, to_ms
from django_redisjobs.queue import get_store
from tests import jobs
from tests.servers import RedisServer
from tests.strategies import huge_ints, scalars, surrogates, texts

REFUSALS = (InvalidJob, SerializationError, UnknownBackgroundFunction)
_prefixes = itertools.count()

anything = st.one_of(
    scalars,
    st.timedeltas(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.lists(st.integers(), max_size=2),
    st.just(object()),
)
safe_names = st.from_regex(r"[A-Za-z0-9_.\-]{1,20}", fullmatch=True)


def mostly(usual: st.SearchStrategy[Any], rest: st.SearchStrategy[Any]) -> Any:
    """`usual` three times in four, else `rest`."""
    return st.one_of(usual, usual, usual, rest)


# Values of the right type (mostly in range) for each option; `anything` for at
# most one option per example, so that the checks late in enqueue get reached.
typed = {
    "queue": mostly(st.sampled_from(["default", "other"]) | safe_names, texts),
    "priority": mostly(st.integers(-100, 100), st.integers(-110, 110)),
    "delay": st.timedeltas(-MAX_DURATION, MAX_DURATION * 2),
    "run_at": st.datetimes(timezones=st.timezones()),
    "at_front": st.booleans(),
    "unique": st.booleans(),
    "unique_key": st.lists(st.characters() | surrogates, min_size=1, max_size=8).map(
        "".join
    )
    | st.text(min_size=0, max_size=201),
    "unique_for": mostly(
        st.timedeltas(timedelta(milliseconds=1), MAX_DURATION),
        st.timedeltas(timedelta(0), MAX_DURATION * 2),
    ),
}


@st.composite
def options(draw: st.DrawFn) -> dict[str, Any]:
    names = sorted(draw(st.sets(st.sampled_from(sorted(typed)))))
    odd = draw(st.sampled_from(["", *names]))  # "": none of them
    return {name: draw(anything if name == odd else typed[name]) for name in names}


arguments = st.lists(st.integers(-5, 5), min_size=2, max_size=2) | st.lists(
    texts | st.floats(allow_nan=True) | huge_ints, max_size=2
)


@pytest.fixture
def fresh_prefix(redis_server: RedisServer) -> Iterator[Any]:
    """Enter REDISJOBS settings with a key prefix no other example uses."""

    def enter() -> Any:
        prefix = f"fuzz{next(_prefixes)}"
        return override_settings(
            REDISJOBS={"REDIS_URL": redis_server.url, "PREFIX": prefix}
        )

    yield enter


def where_is(prefix: str, queue: str, job_id: str) -> list[str]:
    """The names of the collections of `queue` that hold `job_id`."""
    client = get_store().client
    found = []
    if job_id in client.lrange(keys.ready(prefix, queue), 0, -1):
        found.append("ready")
    for name in ("prioritized", "scheduled", "active", "succeeded", "dead"):
        key = getattr(keys, name)(prefix, queue)
        if client.zscore(key, job_id) is not None:
            found.append(name)
    return found


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    # The fixture only hands out a factory; each example enters its own prefix.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(args=arguments, opts=options())
def test_any_enqueue_options_store_a_readable_job_or_raise_our_error(
    fresh_prefix: Any, args: list[Any], opts: dict[str, Any]
) -> None:
    with fresh_prefix():
        prefix = get_store().prefix
        bystander = jobs.add.delay(1, 2)
        try:
            handle = jobs.add.enqueue(args=args, **opts)
        except REFUSALS as err:
            assert str(err).endswith("."), err
            handle = None
        else:
            check_stored(prefix, handle, args, opts)
        assert get_store().get(bystander.id, "default") == bystander.job
        head = get_store().client.lindex(keys.ready(prefix, "default"), 0)
        in_front = handle is not None and head == handle.id
        assert head == bystander.id or in_front


def check_stored(
    prefix: str, handle: Any, args: list[Any], opts: dict[str, Any]
) -> None:
    """The job in Redis is the job the handle holds, with the fields asked for."""
    stored = get_store().get(handle.id, handle.queue)
    assert stored == handle.job
    assert stored.args == args
    assert stored.queue == (opts.get("queue") or "default")
    assert stored.priority == (opts.get("priority") or 0)
    unique = opts.get("unique")
    if unique is None:  # not given: unique_for alone makes the job unique
        unique = opts.get("unique_for") is not None
    if opts.get("unique_key") is not None:
        assert stored.unique_key == opts["unique_key"]
    elif unique:
        assert stored.unique_key.startswith("tests.jobs.add:")
    else:
        assert stored.unique_key == ""
    check_timing(stored, opts)
    places = where_is(prefix, stored.queue, stored.id)
    if stored.status is JobStatus.SCHEDULED:
        assert places == ["scheduled"]
    elif stored.priority != 0:
        assert places == ["prioritized"]
    else:
        assert places == ["ready"]
        head = get_store().client.lindex(keys.ready(prefix, stored.queue), 0)
        assert (head == stored.id) or not opts.get("at_front")


def check_timing(stored: Any, opts: dict[str, Any]) -> None:
    """A job is scheduled for the moment `delay` or `run_at` names (to the ms,
    give or take one for rounding), or queued when that moment is not ahead."""
    enqueued_ms = to_ms(stored.enqueued_at)
    wanted_ms = enqueued_ms
    if opts.get("delay") is not None:
        wanted_ms += opts["delay"] // timedelta(milliseconds=1)
    elif opts.get("run_at") is not None:
        wanted_ms = to_ms(opts["run_at"])
    if stored.status is JobStatus.QUEUED:
        assert stored.run_at is None
        assert wanted_ms <= enqueued_ms + 1
    else:
        assert stored.status is JobStatus.SCHEDULED
        assert to_ms(stored.run_at) > enqueued_ms
        assert abs(to_ms(stored.run_at) - wanted_ms) <= 1
