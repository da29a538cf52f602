"""Priorities within a queue, strict and weighted queue order, through a real worker.

The worker runs one job at a time without prefetch, so the order in which jobs ran
(`queueing_jobs.ran`) is the order in which it claimed them.
"""

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from django_redisjobs import InvalidJob, keys
from django_redisjobs.management.commands.runworker import parse_queues
from django_redisjobs.worker import WorkerConfig, weighted_order
from tests import queueing_jobs
from tests.queueing_jobs import record, record_high, record_low, urgent


@pytest.fixture(autouse=True)
def _reset_jobs() -> Iterator[None]:
    queueing_jobs.reset()
    yield
    queueing_jobs.reset()


def run_one_at_a_time(redisjobs: Any, **config: Any) -> list[str]:
    redisjobs.run_worker(concurrency=1, prefetch=0, **config)
    return list(queueing_jobs.ran)


# -- priority within a queue ---------------------------------------------------------


def test_enqueue_takes_a_priority_per_call(redisjobs: Any) -> None:
    handle = record.enqueue(args=["x"], priority=42)

    assert handle.job.priority == 42
    prioritized = keys.prioritized(redisjobs.prefix, "default")
    assert redisjobs.client.zrange(prioritized, 0, -1) == [handle.id]
    assert redisjobs.store.get(handle.id, "default").priority == 42


def test_priority_per_call_overrides_the_functions(redisjobs: Any) -> None:
    assert urgent.delay("x").job.priority == 10
    assert urgent.enqueue(args=["y"], priority=-3).job.priority == -3
    assert urgent.using(priority=0).delay("z").job.priority == 0


@pytest.mark.parametrize("priority", [101, -101])
def test_priority_outside_the_range_is_rejected(redisjobs: Any, priority: int) -> None:
    with pytest.raises(InvalidJob, match=f"Priority {priority} is outside -100..100"):
        record.enqueue(args=["x"], priority=priority)
    assert redisjobs.store.counts("default")["queued"] == 0


def test_worker_runs_higher_priorities_first_and_equal_ones_in_order(
    redisjobs: Any,
) -> None:
    record.enqueue(args=["0-a"])
    record.enqueue(args=["-5-a"], priority=-5)
    urgent.delay("10-a")
    record.enqueue(args=["100"], priority=100)
    record.enqueue(args=["0-b"])
    urgent.delay("10-b")
    record.enqueue(args=["-5-b"], priority=-5)
    record.enqueue(args=["-100"], priority=-100)
    record.enqueue(args=["1"], priority=1)
    record.enqueue(args=["0-front"], at_front=True)
    urgent.enqueue(args=["10-front"], at_front=True)

    assert run_one_at_a_time(redisjobs) == [
        "100",
        "10-front",
        "10-a",
        "10-b",
        "1",
        "0-front",
        "0-a",
        "0-b",
        "-5-a",
        "-5-b",
        "-100",
    ]


def test_higher_priority_job_enqueued_later_overtakes_waiting_ones(
    redisjobs: Any,
) -> None:
    for label in ("a", "b", "c"):
        record.delay(label)
    worker = redisjobs.worker(concurrency=1, prefetch=0, max_jobs=1)
    worker.run()
    record.enqueue(args=["late but urgent"], priority=5)

    assert run_one_at_a_time(redisjobs) == ["a", "late but urgent", "b", "c"]


def test_at_front_gives_lifo_order_at_the_default_priority(redisjobs: Any) -> None:
    for label in ("first", "second", "third"):
        record.enqueue(args=[label], at_front=True)

    assert run_one_at_a_time(redisjobs) == ["third", "second", "first"]


# -- queue order ---------------------------------------------------------------------


def fill_queues(count: int = 4) -> None:
    for i in range(count):
        record_low.delay(f"low {i}")
        record.delay(f"default {i}")
        record_high.delay(f"high {i}")


def test_worker_takes_its_queues_in_strict_order_by_default(redisjobs: Any) -> None:
    fill_queues(3)

    ran = run_one_at_a_time(redisjobs, queues=("high", "default", "low"))

    assert [label.split()[0] for label in ran] == ["high"] * 3 + ["default"] * 3 + [
        "low"
    ] * 3


def simulate(
    queues: tuple[str, ...], weights: tuple[int, ...], counts: dict[str, int], seed: int
) -> list[str]:
    """The queue each claim serves, drawing orders as the worker does."""
    rng = random.Random(seed)  # noqa: S311 - a test's reproducible draws
    left = dict(counts)
    served = []
    while any(left.values()):
        order = weighted_order(queues, weights, rng.random)
        queue = next(q for q in order if left[q])
        left[queue] -= 1
        served.append(queue)
    return served


def test_weighted_worker_draws_each_claims_queue_order_from_its_random_source(
    redisjobs: Any,
) -> None:
    fill_queues(12)
    queues, weights = ("high", "default", "low"), (5, 3, 1)
    rng = random.Random(2024)  # noqa: S311 - a test's reproducible draws

    from django_redisjobs.worker import Worker

    config = WorkerConfig(
        queues=queues, weights=weights, concurrency=1, prefetch=0, burst=True
    )
    Worker(config, rng=rng).run()

    served = [label.split()[0] for label in queueing_jobs.ran]
    assert served == simulate(queues, weights, dict.fromkeys(queues, 12), 2024)
    # Unlike strict order, lower queues get turns before "high" is drained.
    last_high = max(i for i, q in enumerate(served) if q == "high")
    assert served[:last_high].count("low") >= 1
    assert served[:last_high].count("default") >= 3


def test_weighted_choice_skips_empty_queues_in_proportion_to_weights(
    redisjobs: Any,
) -> None:
    for i in range(40):
        record.delay(f"default {i}")
        record_low.delay(f"low {i}")
    queues, weights = ("high", "default", "low"), (5, 3, 1)

    from django_redisjobs.worker import Worker

    config = WorkerConfig(
        queues=queues, weights=weights, concurrency=1, prefetch=0, burst=True
    )
    Worker(config, rng=random.Random(99)).run()  # noqa: S311 - reproducible draws

    first_40 = Counter(label.split()[0] for label in queueing_jobs.ran[:40])
    # "high" is empty: default and low share the claims 3 to 1 (30 of 40 expected).
    assert 24 <= first_40["default"] <= 36
    assert first_40["default"] + first_40["low"] == 40


def test_weighted_order_draws_each_place_by_weight_among_those_left() -> None:
    draws = iter([0.0, 0.99, 0.5])
    assert weighted_order(["a", "b", "c"], [1, 1, 2], lambda: next(draws)) == [
        "a",
        "c",
        "b",
    ]
    rng = random.Random(5)  # noqa: S311 - a test's reproducible draws
    firsts = Counter(
        weighted_order(["high", "default", "low"], [5, 3, 1], rng.random)[0]
        for _ in range(9_000)
    )
    assert firsts["high"] == pytest.approx(5_000, rel=0.05)
    assert firsts["default"] == pytest.approx(3_000, rel=0.07)
    assert firsts["low"] == pytest.approx(1_000, rel=0.12)


def test_weights_must_match_the_queues() -> None:
    with pytest.raises(ValueError, match="must give each of the queues"):
        WorkerConfig(queues=("a", "b"), weights=(1,))
    with pytest.raises(ValueError, match="must give each of the queues"):
        WorkerConfig(queues=("a",), weights=(0,))


# -- runworker --queues ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("high,default,low", (("high", "default", "low"), None)),
        ("high:5,default:3,low:1", (("high", "default", "low"), (5, 3, 1))),
        (" high : 5 , low:1,", (("high", "low"), (5, 1))),
        ("", ((), None)),
    ],
)
def test_queues_option_parses_names_and_weights(
    value: str, parsed: tuple[tuple[str, ...], tuple[int, ...] | None]
) -> None:
    assert parse_queues(value) == parsed


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("high:0", r"Weight '0' of queue 'high' is not valid"),
        ("high:x", r"Weight 'x' of queue 'high' is not valid"),
        ("high:-2", r"Weight '-2' of queue 'high' is not valid"),
        ("high:5,low", r"gives weights to some queues only"),
        ("bad queue:2", r"Queue name 'bad queue' is not valid"),
        (",,", r"--queues ',,' names no queue"),
        ("default,default", r"names queue 'default' twice"),
    ],
)
def test_queues_option_rejects_bad_weights(value: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_queues(value)


def test_runworker_reports_a_bad_weight_as_a_command_error(redisjobs: Any) -> None:
    with pytest.raises(CommandError, match="Weight '0' of queue 'low' is not valid"):
        call_command("runworker", "--burst", "--queues", "high:2,low:0")
