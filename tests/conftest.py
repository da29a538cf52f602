import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.test import override_settings

from django_redisjobs.queue import JobStore, get_store
from django_redisjobs.worker import Worker, WorkerConfig, WorkerStats
from tests.servers import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server shared by the whole run; persistence off."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def make_redis_server() -> Iterator[Callable[..., RedisServer]]:
    """Start a private redis-server for a fault test; all are closed at test end.

    Keyword arguments are config directives: ``make_redis_server(appendonly="yes")``.
    """
    servers: list[RedisServer] = []

    def make(**config: str) -> RedisServer:
        server = RedisServer(**config)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None,
    request: pytest.FixtureRequest,
) -> None:
    """Point the ``postgres`` alias at a private cluster before test DBs exist.

    pytest-django calls this only when a test needs the database, so the cluster
    starts only then. The dict is changed in place because Django's connection
    handler holds the same dict objects.
    """
    from django.conf import settings

    if "postgres" not in settings.DATABASES:
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    settings.DATABASES["postgres"]["HOST"] = server.host
    settings.DATABASES["postgres"]["PORT"] = str(server.port)


@dataclass
class RedisJobs:
    """The app pointed at a private Redis under a fresh key prefix, for one test."""

    server: RedisServer
    prefix: str
    settings: dict[str, Any]

    @property
    def client(self) -> redis.Redis:
        return get_store().client

    @property
    def store(self) -> JobStore:
        return get_store()

    def worker(self, scheduler_object: Any = None, **config: Any) -> Worker:
        """An in-process burst worker with no waits, serving `queues`; a given
        `scheduler_object` replaces the scheduler it would build."""
        config.setdefault("queues", ("default",))
        config.setdefault("burst", True)
        config.setdefault("concurrency", 2)
        config.setdefault("grace", timedelta(seconds=5))
        if scheduler_object is not None:
            return Worker(WorkerConfig(**config), scheduler=scheduler_object)
        return Worker(WorkerConfig(**config))

    def run_worker(self, **config: Any) -> WorkerStats:
        return self.worker(**config).run()


_prefixes = itertools.count()


def suite_settings(server: RedisServer, prefix: str) -> dict[str, Any]:
    """REDISJOBS for tests: `server` under `prefix`, with fast retries, 5 s leases."""
    return {
        "REDIS_URL": server.url,
        "PREFIX": prefix,
        "BACKOFF_BASE_S": 0.001,
        "BACKOFF_MAX_S": 0.001,
        "LEASE_S": 5,
    }


@pytest.fixture
def redisjobs(redis_server: RedisServer) -> Iterator[RedisJobs]:
    """Point REDISJOBS at the shared test server with a prefix no other test uses."""
    prefix = f"t{os.getpid()}-{next(_prefixes)}"
    settings = suite_settings(redis_server, prefix)
    with override_settings(REDISJOBS=settings):
        yield RedisJobs(redis_server, prefix, settings)
