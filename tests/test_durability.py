"""Redis persistence and eviction settings: read at worker start, and by the
deploy-tagged system check."""

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from django_redisjobs.queue import Persistence
from tests import jobs
from tests.conftest import RedisJobs
from tests.faults import redisjobs_on
from tests.servers import RedisServer, free_port

MakeServer = Callable[..., RedisServer]


def deploy_messages() -> list[checks.CheckMessage]:
    return checks.run_checks(include_deployment_checks=True, tags=["redisjobs"])


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id or "" for m in messages]


def test_persistence_reads_aof_fsync_and_eviction_policy(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server(appendonly="yes", maxmemory_policy="noeviction")
    with redisjobs_on(server) as rj:
        persistence = rj.store.persistence()

    assert persistence == Persistence(True, "everysec", "noeviction")
    assert persistence.problems() == []


def test_aof_off_is_a_problem(redisjobs: RedisJobs) -> None:
    (problem,) = redisjobs.store.persistence().problems()

    assert problem.code == "aof"
    assert "append-only persistence (AOF) off" in problem.message
    assert "appendonly yes" in problem.hint


@pytest.mark.parametrize(
    ("policy", "risk"),
    [
        ("allkeys-lru", "any key, including queued and running jobs"),
        ("allkeys-random", "any key, including queued and running jobs"),
        ("volatile-ttl", "keys that have a TTL: finished jobs and their results"),
    ],
)
def test_eviction_policy_other_than_noeviction_is_a_problem(
    policy: str, risk: str
) -> None:
    (problem,) = Persistence(True, "always", policy).problems()

    assert problem.code == "eviction"
    assert f"maxmemory-policy is {policy!r}" in problem.message
    assert risk in problem.message
    assert "maxmemory-policy noeviction" in problem.hint


def test_without_config_command_persistence_comes_from_info(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server(appendonly="yes", maxmemory_policy="allkeys-lru")
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "default", "-config")
    with redisjobs_on(server) as rj:
        persistence = rj.store.persistence()

    assert persistence == Persistence(True, None, "allkeys-lru")


def test_without_config_and_info_persistence_is_unknown(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "default", "-config", "-info")
    with redisjobs_on(server) as rj:
        persistence = rj.store.persistence()

    assert persistence == Persistence(None, None, None)
    assert [p.code for p in persistence.problems()] == ["unknown"]


def test_worker_warns_at_start_when_aof_is_off(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "django_redisjobs.worker"):
        redisjobs.run_worker()

    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("redis may lose jobs appendonly=no; ")
    assert "manage.py check --deploy" in warning
    assert "REDISJOBS['DURABILITY_WARNING'] = False" in warning


def test_durability_warning_false_silences_the_worker_not_the_deploy_check(
    make_redis_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis_server()
    with (
        redisjobs_on(server, DURABILITY_WARNING=False) as rj,
        caplog.at_level(logging.WARNING, "django_redisjobs"),
    ):
        rj.run_worker()
        assert ids(deploy_messages()) == ["redisjobs.W001"]

    assert caplog.records == []


def test_worker_told_not_to_warn_about_durability_does_not(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    # A supervisor's children after the first: the first one has said it.
    with caplog.at_level(logging.WARNING, "django_redisjobs"):
        redisjobs.run_worker(warn_durability=False)

    assert caplog.records == []


def test_worker_on_a_durable_redis_does_not_warn(
    make_redis_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis_server(appendonly="yes")
    with (
        redisjobs_on(server) as rj,
        caplog.at_level(logging.WARNING, "django_redisjobs"),
    ):
        handle = jobs.add.delay(1, 2)
        rj.run_worker()
        assert handle.refresh().result == 3

    assert caplog.records == []


def test_deploy_check_warns_about_aof_off_and_eviction(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server(maxmemory_policy="allkeys-lru")
    with redisjobs_on(server):
        messages = deploy_messages()

    assert ids(messages) == ["redisjobs.W001", "redisjobs.W002"]
    assert all(isinstance(m, checks.Warning) for m in messages)
    assert "'allkeys-lru'" in messages[1].msg


def test_deploy_check_passes_on_a_durable_redis(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server(appendonly="yes", maxmemory_policy="noeviction")
    with redisjobs_on(server):
        assert deploy_messages() == []


def test_deploy_check_reports_unreachable_redis_as_a_warning() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with redisjobs_on_url(url):
        (message,) = deploy_messages()

    assert message.id == "redisjobs.W003"
    assert isinstance(message, checks.Warning)
    assert message.msg.startswith("Could not read Redis's persistence settings:")


def test_checks_without_deploy_do_not_talk_to_redis() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with redisjobs_on_url(url):
        assert checks.run_checks(tags=["redisjobs"]) == []


def test_deploy_check_leaves_invalid_settings_to_the_settings_check() -> None:
    with redisjobs_on_url("redis://127.0.0.1:1/0", PREFIX="bad prefix"):
        assert ids(deploy_messages()) == ["redisjobs.E001"]


def redisjobs_on_url(url: str, **settings: Any) -> override_settings:
    return override_settings(REDISJOBS={"REDIS_URL": url, **settings})
