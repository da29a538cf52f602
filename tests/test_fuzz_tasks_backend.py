"""Property: enqueueing a task with any arguments and any priority or run_after
either refuses at the door (Django's `TypeError`/`ValueError` for what
``normalize_json`` cannot take, our `SerializationError` for what JSON cannot
carry unchanged, `InvalidTask` for a bad priority or run_after) and stores
nothing, or stores a job whose result reads back from Redis equal to the one
enqueue returned: args and kwargs normalised exactly as Django's backends
normalise them.

Examples (Hypothesis with ``database=None``): 150 argument sets and 100
priority/run_after pairs against the suite's real Redis, a few seconds.
"""

from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip(
    "django.tasks", reason="django.tasks and RedisJobsBackend need Django 6.0+"
)

from django.tasks import TaskResultStatus  # noqa: E402
from django.tasks.exceptions import InvalidTask  # noqa: E402
from django.utils import timezone  # noqa: E402
from django.utils.json import normalize_json  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from django_redisjobs import SerializationError  # noqa: E402
from django_redisjobs.job import from_ms, to_ms  # noqa: E402
from tests import django_tasks as t  # noqa: E402
from tests.strategies import scalars, texts  # noqa: E402

keys_ = st.one_of(texts, st.integers(-3, 3), st.binary(max_size=3))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys_, inner, max_size=3),
    ),
    max_leaves=6,
)


def examples(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


@examples(150)
@given(
    args=st.lists(values, max_size=3),
    kwargs=st.dictionaries(st.text(max_size=5), values, max_size=3),
)
def test_any_arguments_are_refused_or_read_back_normalised(
    redisjobs: Any, args: list[Any], kwargs: dict[str, Any]
) -> None:
    before = redisjobs.store.counts("default")["queued"]
    try:
        result = t.noop.enqueue(*args, **kwargs)
    except (TypeError, ValueError, SerializationError):
        assert redisjobs.store.counts("default")["queued"] == before
        return
    assert result.args == normalize_json(args)
    assert result.kwargs == normalize_json(kwargs)
    assert t.noop.get_result(result.id) == result


@examples(100)
@given(
    priority=st.integers(-150, 150) | st.floats(-101, 101),
    offset=st.none() | st.timedeltas(timedelta(days=-400), timedelta(days=40_000)),
)
def test_any_priority_and_run_after_are_refused_or_stored_as_given(
    redisjobs: Any, priority: Any, offset: timedelta | None
) -> None:
    run_after = None if offset is None else timezone.now() + offset
    try:
        task = t.noop.using(priority=priority, run_after=run_after)
    except InvalidTask:
        assert not (-100 <= priority <= 100 and int(priority) == priority) or (
            offset is not None and offset > timedelta(days=36_500)
        )
        return
    result = task.enqueue()
    read = t.noop.get_result(result.id)
    assert read.status == TaskResultStatus.READY
    assert read.task.priority == priority
    expected = None if run_after is None else from_ms(to_ms(run_after))
    assert read.task.run_after == expected
    assert read.enqueued_at == result.enqueued_at
