"""What `runworker` serves without --queues, and the lines --burst ends with
(django_redisjobs/management/summary.py)."""

from datetime import timedelta

import pytest
from django.test import override_settings

from django_redisjobs.conf import get_settings
from django_redisjobs.management.summary import (
    LeftBehind,
    burst_summary,
    counted,
    default_queues,
    left_behind,
)
from django_redisjobs.registry import FunctionSpec, Registry
from tests import jobs
from tests.conftest import RedisJobs


def spec(name: str, queue: str | None) -> FunctionSpec:
    return FunctionSpec(
        name=f"tests.jobs.{name}", func=jobs.add, is_async=False, queue=queue
    )


def test_default_queues_are_the_default_then_every_named_queue_by_name() -> None:
    functions = Registry()
    for name, queue in [
        ("a", "reports"),
        ("b", None),
        ("c", "emails"),
        ("d", "default"),
    ]:
        functions.register(spec(name, queue))
    cron = [
        {
            "name": "n",
            "function": "tests.jobs.add",
            "schedule": "* * * * *",
            "queue": "nightly",
        }
    ]

    with override_settings(REDISJOBS={"CRON": cron}):
        queues = default_queues(get_settings(), functions)

    assert queues == ("default", "emails", "nightly", "reports")


def test_default_queues_follow_default_queue_setting() -> None:
    functions = Registry()
    functions.register(spec("a", "emails"))

    with override_settings(REDISJOBS={"DEFAULT_QUEUE": "main"}):
        assert default_queues(get_settings(), functions) == ("main", "emails")


@pytest.mark.parametrize(
    ("count", "expected"), [(0, "0 jobs"), (1, "1 job"), (2, "2 jobs")]
)
def test_counted_uses_the_plural_unless_one(count: int, expected: str) -> None:
    assert counted(count, "job") == expected


NOTHING_LEFT = LeftBehind({}, {})


def test_summary_counts_jobs_by_outcome_and_attempts_apart() -> None:
    by_status = {"succeeded": 3, "retrying": 2, "dead": 1, "cancelled": 1}

    lines = burst_summary(by_status, ["default"], NOTHING_LEFT).splitlines()

    assert lines == [
        "Burst done: 5 jobs ended (3 succeeded, 1 dead, 1 cancelled), in 7 attempts.",
        "2 attempts failed and scheduled a retry.",
    ]


def test_summary_of_one_job_is_singular() -> None:
    summary = burst_summary({"succeeded": 1}, ["default"], NOTHING_LEFT)

    assert summary == "Burst done: 1 job ended (1 succeeded), in 1 attempt."


def test_summary_with_no_attempt_names_the_queues_served() -> None:
    summary = burst_summary({}, ["default", "emails"], None)

    assert summary == "Burst done: no job was ready in default, emails."


def test_summary_says_what_was_handed_back_and_what_is_left() -> None:
    left = LeftBehind({"default": 1}, {"emails": 2, "reports": 1})

    lines = burst_summary({"requeued": 1, "retrying": 1}, ["default"], left)

    assert lines.splitlines() == [
        "Burst done: 0 jobs ended, in 2 attempts.",
        "1 attempt failed and scheduled a retry.",
        "1 job handed back to the queue at the stop.",
        "1 job scheduled for later (retries or delayed jobs) in default (1): a "
        "worker without --burst runs them when due.",
        "3 jobs wait in queues this worker does not serve: emails (2), reports (1); "
        "name them in --queues.",
    ]


def test_left_behind_reads_scheduled_and_unserved_jobs(redisjobs: RedisJobs) -> None:
    jobs.add.enqueue((1, 2), delay=timedelta(hours=1))
    jobs.add.delay(1, 2)
    jobs.echo.delay("queued on other")
    jobs.echo.enqueue(("later on other",), delay=timedelta(hours=1))

    left = left_behind(redisjobs.store, ["default"])

    assert left == LeftBehind({"default": 1}, {"other": 2})
