"""RedisJobsBackend's validation, OPTIONS, system checks, transactions, result TTL
and the error it raises when Redis is away, against real Redis."""

import importlib
import logging
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

pytest.importorskip(
    "django.tasks", reason="django.tasks and RedisJobsBackend need Django 6.0+"
)

from django.conf import settings  # noqa: E402
from django.core import checks  # noqa: E402
from django.db import transaction  # noqa: E402
from django.tasks import (  # noqa: E402
    TaskResultStatus,
    default_task_backend,
    task,
    task_backends,
)
from django.tasks.exceptions import (  # noqa: E402
    InvalidTask,
    InvalidTaskBackend,
    TaskResultDoesNotExist,
)
from django.tasks.signals import task_enqueued  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from django_redisjobs import (  # noqa: E402
    JobCancelled,
    JobHandle,
    JobTimeout,
    NoCurrentJob,
    RedisUnavailable,
    SerializationError,
    keys,
)
from django_redisjobs.management.commands.runworker import (  # noqa: E402
    _configure_logging,
)
from django_redisjobs.registry import registry  # noqa: E402
from tests import django_tasks as t  # noqa: E402
from tests.faults import redisjobs_on  # noqa: E402
from tests.polling import wait_until  # noqa: E402

BACKEND = "django_redisjobs.tasks_backend.RedisJobsBackend"


def tasks_setting(**aliases: dict[str, Any]) -> dict[str, Any]:
    """TASKS with the suite's "default" alias plus `aliases` (OPTIONS each)."""
    return {
        **settings.TASKS,
        **{
            alias: {"BACKEND": BACKEND, "QUEUES": [], "OPTIONS": options}
            for alias, options in aliases.items()
        },
    }


@pytest.fixture
def enqueued() -> Iterator[list[Any]]:
    seen: list[Any] = []

    def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(task_result)

    task_enqueued.connect(receive)
    yield seen
    task_enqueued.disconnect(receive)


# -- validation ------------------------------------------------------------------


def test_queue_names_are_validated_against_queues() -> None:
    with pytest.raises(InvalidTask, match="Queue 'unknown' is not valid for backend"):
        t.noop.using(queue_name="unknown")
    assert t.noop.using(queue_name="other").queue_name == "other"


def test_validation_on_enqueue_follows_the_current_queues(redisjobs: Any) -> None:
    task_in_other = t.noop.using(queue_name="other")
    queues_1 = {"default": {"BACKEND": BACKEND, "QUEUES": ["queue-1"]}}
    with (
        override_settings(TASKS=queues_1),
        pytest.raises(InvalidTask, match="Queue 'other' is not valid for backend"),
    ):
        task_in_other.enqueue()


def test_a_queue_name_redis_keys_cannot_carry_is_refused() -> None:
    with pytest.raises(InvalidTask, match="'bad queue' is not a valid queue name"):
        t.noop.using(backend="once", queue_name="bad queue")


@pytest.mark.parametrize("priority", [-101, 101, 3.5])
def test_priority_must_be_a_whole_number_in_range(priority: Any) -> None:
    with pytest.raises(InvalidTask, match="priority must be a whole number between"):
        t.noop.using(priority=priority)


def test_run_after_must_be_aware() -> None:
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        t.noop.using(run_after=datetime.now())  # noqa: DTZ005 - the point


def test_run_after_more_than_a_century_ahead_is_refused() -> None:
    far = timezone.now() + timedelta(days=40_000)
    with pytest.raises(InvalidTask, match="run_after is .*; use a time at most"):
        t.noop.using(run_after=far)


def test_context_task_needs_a_context_parameter() -> None:
    with pytest.raises(InvalidTask, match="first argument of 'context'"):
        task(takes_context=True)(t.meaning_of_life.func)


def test_task_function_must_be_module_level() -> None:
    def local() -> None:
        pass

    with pytest.raises(InvalidTask, match="defined at a module level"):
        task()(local)


def test_arguments_json_cannot_carry_unchanged_are_refused(redisjobs: Any) -> None:
    with pytest.raises(SerializationError, match="keyword argument names|key 1"):
        t.noop.enqueue({1: "int key"})
    with pytest.raises(SerializationError, match="nan"):
        t.noop.enqueue(float("nan"))


def test_a_task_the_worker_cannot_know_is_reported(redisjobs: Any) -> None:
    # A job naming a function this process never registered.
    result = t.noop.enqueue()
    job_key = keys.job(redisjobs.prefix, "default", result.id)
    redisjobs.client.hset(job_key, "func", "tests.nowhere.gone")
    with pytest.raises(TaskResultDoesNotExist, match="not a task known"):
        t.noop.get_result(result.id)


# -- OPTIONS ---------------------------------------------------------------------


def test_options_set_attempts_timeout_and_result_ttl(redisjobs: Any) -> None:
    options = {"MAX_ATTEMPTS": 5, "TIMEOUT_S": 0.2, "RESULT_TTL_S": 60}
    with override_settings(TASKS=tasks_setting(extras=options)):
        result = t.sleeps.using(backend="extras").enqueue(0)
        slow = t.sleeps.using(backend="extras").enqueue(10)
        job = redisjobs.store.get(result.id, "default")
        assert (job.max_attempts, job.timeout, job.result_ttl) == (
            5,
            timedelta(seconds=0.2),
            timedelta(seconds=60),
        )
        redisjobs.run_worker()
        assert t.sleeps.get_result(result.id).status == TaskResultStatus.SUCCESSFUL
        ttl_ms = redisjobs.client.pttl(keys.job(redisjobs.prefix, "default", result.id))
        assert 50_000 < ttl_ms <= 60_000
        failed = t.sleeps.get_result(slow.id)
    assert failed.status == TaskResultStatus.FAILED
    assert failed.attempts == 5
    assert {e.exception_class for e in failed.errors} == {JobTimeout}


def test_unique_option_returns_the_waiting_jobs_result(
    redisjobs: Any, enqueued: list[Any]
) -> None:
    with override_settings(TASKS=tasks_setting(unique={"UNIQUE": True})):
        first = t.record.using(backend="unique").enqueue("same")
        second = t.record.using(backend="unique").enqueue("same")
        other = t.record.using(backend="unique").enqueue("different")
    assert second.id == first.id
    assert other.id != first.id
    assert [r.id for r in enqueued] == [first.id, other.id]
    redisjobs.run_worker()
    assert sorted(t.ran) == ["different", "same"]
    t.reset()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"MAX_ATTEMPTS": 0}, r"\['MAX_ATTEMPTS'\] is 0"),
        ({"NOPE": 1}, "has the key 'NOPE', which is not a known option"),
        ({"UNIQUE": "yes"}, r"\['UNIQUE'\] is 'yes'"),
        ({"UNIQUE_FOR_S": -1}, r"\['UNIQUE_FOR_S'\] is -1"),
        ([1], r"TASKS\['bad'\]\['OPTIONS'\] is \[1\], not a dict"),
    ],
)
def test_bad_options_are_check_errors_and_stop_enqueue(
    redisjobs: Any, options: Any, message: str
) -> None:
    with override_settings(TASKS=tasks_setting(bad=options)):
        backend = task_backends["bad"]
        errors = [m for m in backend.check() if m.id == "redisjobs.T003"]
        assert len(errors) == 1
        assert re.search(message, errors[0].msg), errors[0].msg
        with pytest.raises(InvalidTaskBackend, match=message):
            t.noop.using(backend="bad").enqueue()


# -- system checks ---------------------------------------------------------------


def test_a_valid_configuration_has_no_check_messages() -> None:
    assert task_backends["default"].check() == []


def test_invalid_redis_settings_are_check_errors() -> None:
    with override_settings(REDISJOBS={"REDIS_URL": "http://example.com"}):
        (error,) = task_backends["default"].check()
    assert error.id == "redisjobs.T002"
    assert "REDISJOBS['REDIS_URL']" in error.msg
    with override_settings(REDISJOBS={"CACHE_ALIAS": "missing"}):
        (error,) = task_backends["default"].check()
    assert error.id == "redisjobs.T002"
    assert "'missing', which is not a django-redis cache" in error.msg


def test_a_queue_redis_cannot_carry_is_a_check_error() -> None:
    bad = {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "a b"]}}
    with override_settings(TASKS=bad):
        (error,) = task_backends["default"].check()
    assert error.id == "redisjobs.T004"
    assert "'a b'" in error.msg


def test_the_backend_without_the_app_installed_is_a_check_error() -> None:
    apps_without = [a for a in settings.INSTALLED_APPS if a != "django_redisjobs"]
    with override_settings(INSTALLED_APPS=apps_without):
        ids = [m.id for m in task_backends["default"].check()]
    assert ids == ["redisjobs.T001"]


def test_djangos_tasks_checks_run_with_the_app() -> None:
    """AppConfig.ready() imported django.tasks, so Django's check_tasks is
    registered and reaches the backend's check()."""
    bad = {"default": {"BACKEND": BACKEND, "QUEUES": ["a b"]}}
    with override_settings(TASKS=bad):
        messages = checks.run_checks()
    assert "redisjobs.T004" in [m.id for m in messages]


def test_importing_the_backend_without_django_tasks_says_what_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What Django 5.2 does: there is no django.tasks to import."""
    for name in list(sys.modules):
        if name == "django.tasks" or name.startswith("django.tasks."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "django.tasks", None)
    for name in ("tasks_backend", "task_jobs", "task_runs"):
        monkeypatch.delitem(sys.modules, f"django_redisjobs.{name}")
        with pytest.raises(ImportError, match=r"needs Django 6\.0 or newer"):
            importlib.import_module(f"django_redisjobs.{name}")


# -- transactions ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_a_transaction_waits_for_the_commit(
    redisjobs: Any, enqueued: list[Any]
) -> None:
    with transaction.atomic():
        result = t.noop.enqueue(1)
        assert result.status == TaskResultStatus.READY
        assert result.enqueued_at is not None
        with pytest.raises(TaskResultDoesNotExist):
            t.noop.get_result(result.id)
        assert enqueued == []
    assert t.noop.get_result(result.id) == result
    assert [r.id for r in enqueued] == [result.id]


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_a_rolled_back_transaction_stores_nothing(
    redisjobs: Any, enqueued: list[Any]
) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        result = t.noop.enqueue(1)
        raise Abort
    with pytest.raises(TaskResultDoesNotExist):
        t.noop.get_result(result.id)
    assert enqueued == []
    assert redisjobs.store.counts("default")["queued"] == 0


@pytest.mark.django_db(transaction=True)
def test_on_commit_false_enqueues_at_once_like_django(redisjobs: Any) -> None:
    with (
        override_settings(TASKS=tasks_setting(now={"ON_COMMIT": False})),
        transaction.atomic(),
    ):
        result = t.noop.using(backend="now").enqueue()
        assert t.noop.get_result(result.id).status == TaskResultStatus.READY


# -- results: TTL and Redis away -------------------------------------------------


def test_a_result_expires_after_its_ttl(redisjobs: Any) -> None:
    with override_settings(TASKS=tasks_setting(brief={"RESULT_TTL_S": 0.3})):
        result = t.noop.using(backend="brief").enqueue()
        redisjobs.run_worker()
        assert t.noop.get_result(result.id).status == TaskResultStatus.SUCCESSFUL

        def gone() -> bool:
            try:
                t.noop.get_result(result.id)
            except TaskResultDoesNotExist:
                return True
            return False

        wait_until(gone, what="the result to expire")


def test_redis_away_raises_redis_unavailable(make_redis_server: Any) -> None:
    server = make_redis_server()
    with redisjobs_on(server):
        result = t.noop.enqueue()
        server.stop()
        with pytest.raises(RedisUnavailable, match="Could not"):
            t.noop.enqueue()
        with pytest.raises(RedisUnavailable, match="Could not read from Redis"):
            t.noop.get_result(result.id)
        with pytest.raises(RedisUnavailable):
            default_task_backend.get_result(result.id)


# -- our extensions seen through django.tasks -------------------------------------


def test_a_cancelled_task_reads_failed_with_job_cancelled(redisjobs: Any) -> None:
    result = t.noop.enqueue()
    assert JobHandle.load(result.id).cancel() is True
    read = t.noop.get_result(result.id)
    assert read.status == TaskResultStatus.FAILED
    assert [e.exception_class for e in read.errors] == [JobCancelled]


def test_eager_mode_runs_the_task_inside_enqueue(redisjobs: Any) -> None:
    with override_settings(REDISJOBS={**redisjobs.settings, "EAGER": True}):
        result = t.meaning_of_life.enqueue()
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.return_value == 42
        with pytest.raises(TaskResultDoesNotExist):
            t.meaning_of_life.get_result(result.id)


def test_runworker_verbosity_sets_djangos_task_log_level() -> None:
    """-v 0 silences Django's per-task INFO lines with the worker's own."""
    names = ("django_redisjobs", "django.tasks")
    before = {name: logging.getLogger(name).level for name in names}
    try:
        _configure_logging(0)
        assert logging.getLogger("django.tasks").level == logging.WARNING
        _configure_logging(2)
        assert logging.getLogger("django.tasks").level == logging.DEBUG
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def test_a_tasks_runner_runs_only_as_a_job() -> None:
    runner = registry.get("tests.django_tasks.noop").func
    with pytest.raises(NoCurrentJob, match="runs only as a job on a worker"):
        runner()
