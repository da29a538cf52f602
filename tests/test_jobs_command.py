"""``manage.py jobs``: each action, its output and its errors."""

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from django_redisjobs import JobStatus
from tests import jobs
from tests.conftest import RedisJobs
from tests.servers import RedisServer


def run(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def test_info_lists_each_queue_with_its_counts(redisjobs: RedisJobs) -> None:
    jobs.add.delay(1, 2)
    redisjobs.store.pause("default")
    out = run("info")
    assert "queued" in out.splitlines()[0]
    (line,) = [line for line in out.splitlines() if line.startswith("default")]
    assert line.split()[1] == "1"
    assert line.endswith("yes")


def test_retry_by_id_and_all_dead(redisjobs: RedisJobs) -> None:
    dead = [jobs.always_fails.using(max_attempts=1).delay("x") for _ in range(2)]
    redisjobs.run_worker()
    assert run("retry", dead[0].id) == f"{dead[0].id}: retried\n"
    assert "not retried" in run("retry", dead[0].id, "--queue", "default")
    assert run("retry", "--all-dead", "default") == "1 dead job(s) retried.\n"
    assert {h.refresh().status for h in dead} == {JobStatus.QUEUED}


def test_cancel_purge_empty_pause_resume(redisjobs: RedisJobs) -> None:
    waiting = jobs.add.delay(1, 1)
    assert run("cancel", waiting.id) == f"{waiting.id}: cancelled\n"
    jobs.always_fails.using(max_attempts=1).delay("x")
    redisjobs.run_worker()
    assert run("purge", "default") == "1 dead job(s) deleted from 'default'.\n"
    jobs.add.delay(1, 1)
    assert run("empty", "default") == "1 ready job(s) deleted from 'default'.\n"
    assert run("pause", "default") == "Queue 'default' paused.\n"
    assert run("pause", "default") == "Queue 'default' was already paused.\n"
    assert run("resume", "default") == "Queue 'default' resumed.\n"


def test_clear_errors(redisjobs: RedisJobs) -> None:
    with pytest.raises(CommandError, match="Give job ids, or --all-dead QUEUE."):
        run("retry")
    with pytest.raises(CommandError, match="does not exist in any queue"):
        run("retry", "0" * 32)


def test_redis_down_is_a_command_error(
    make_redis_server: Callable[..., RedisServer], settings: Any
) -> None:
    server = make_redis_server()
    url = server.url
    server.stop()
    settings.REDISJOBS = {"REDIS_URL": url}
    with pytest.raises(CommandError, match="Could not read from Redis"):
        run("info")


def test_every_action_has_help_text() -> None:
    from django_redisjobs.management.commands.jobs import Command

    text = Command().create_parser("manage.py", "jobs").format_help()
    for action in ("info", "retry", "cancel", "purge", "empty", "pause", "resume"):
        assert action in text
    assert "Run 'manage.py jobs <action> --help'" in text
