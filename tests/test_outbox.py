"""The outbox (REDISJOBS["OUTBOX"]): jobs committed with the caller's rows reach
Redis exactly once, even when Redis is down at commit or a relay dies mid-batch.
Real SQLite and PostgreSQL transactions, real Redis servers started here."""

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connections, transaction
from django.test import override_settings

from django_redisjobs import InvalidJob, JobHandle, JobStatus
from django_redisjobs.models import OutboxEntry
from django_redisjobs.relay import OutboxRelay
from tests import fault_jobs, jobs
from tests.conftest import RedisJobs
from tests.faults import fresh_fault_jobs, redisjobs_on
from tests.polling import wait_until
from tests.servers import RedisServer

DATABASES = ["default", "postgres"]
pytestmark = pytest.mark.django_db(transaction=True, databases=DATABASES)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
_ZERO = timedelta(0)
COMMITTED = 1000  # jobs committed while Redis is down
PER_TRANSACTION = 100


@pytest.fixture(params=DATABASES)
def alias(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def outbox_on(redisjobs: RedisJobs) -> Iterator[RedisJobs]:
    values = {**redisjobs.settings, "OUTBOX": True, "OUTBOX_DATABASES": DATABASES}
    with override_settings(REDISJOBS=values):
        yield RedisJobs(redisjobs.server, redisjobs.prefix, values)


@pytest.fixture
def private_outbox(
    make_redis_server: Any,
) -> Iterator[tuple[RedisServer, RedisJobs]]:
    """The outbox on, against a Redis server the test may stop."""
    server = make_redis_server()
    with (
        redisjobs_on(server, OUTBOX=True, OUTBOX_DATABASES=DATABASES, LEASE_S=5) as rj,
        fresh_fault_jobs(),
    ):
        yield server, rj


def rows(alias: str) -> int:
    return OutboxEntry.objects.using(alias).count()


def queued(rj: RedisJobs) -> int:
    return int(rj.store.counts("default")["queued"])


def commit_jobs(alias: str, count: int) -> list[JobHandle]:
    """Commit `count` quick jobs, PER_TRANSACTION per transaction; each
    transaction also writes a row of its own, as a real caller would."""
    handles: list[JobHandle] = []
    for start in range(0, count, PER_TRANSACTION):
        with transaction.atomic(using=alias):
            OutboxEntry.objects.using(alias).count()  # the caller's own query
            calls = [((n,), {}) for n in range(start, start + PER_TRANSACTION)]
            handles += fault_jobs.quick.enqueue_many(calls, using=alias)
    return handles


def assert_each_ran_once(rj: RedisJobs, handles: list[JobHandle]) -> None:
    rj.run_worker(concurrency=4)
    for handle in handles:
        handle.refresh()
        assert handle.status is JobStatus.SUCCEEDED, handle.job
        assert fault_jobs.runs[handle.id] == 1, handle.job
    assert sum(fault_jobs.runs.values()) == len(handles)
    assert rj.store.counts("default")["succeeded"] == len(handles)


def test_rows_commit_with_the_transaction_and_reach_redis_at_commit(
    outbox_on: RedisJobs, alias: str
) -> None:
    with transaction.atomic(using=alias):
        handle = jobs.add.enqueue(args=[1, 2], using=alias)
        assert handle.status is JobStatus.PENDING
        assert rows(alias) == 1
        assert queued(outbox_on) == 0

    assert handle.status is JobStatus.QUEUED
    assert handle.refresh().status is JobStatus.QUEUED
    assert rows(alias) == 0
    outbox_on.run_worker()
    assert handle.refresh().result == 3


def test_rolled_back_rows_never_reach_redis(outbox_on: RedisJobs, alias: str) -> None:
    with pytest.raises(ZeroDivisionError), transaction.atomic(using=alias):
        handle = jobs.add.enqueue(args=[1, 2], using=alias)
        1 / 0  # noqa: B018

    with transaction.atomic(using=alias):
        kept = jobs.add.enqueue(args=[1, 1], using=alias)
        try:
            with transaction.atomic(using=alias):
                jobs.add.enqueue(args=[2, 2], using=alias)
                raise ValueError("roll back the savepoint")
        except ValueError:
            pass

    assert handle.status is JobStatus.PENDING
    assert kept.status is JobStatus.QUEUED
    assert rows(alias) == 0
    assert queued(outbox_on) == 1
    assert OutboxRelay(DATABASES).sweep(grace=_ZERO) == 0


def test_handle_cancelled_before_commit_leaves_no_row(
    outbox_on: RedisJobs, alias: str
) -> None:
    with transaction.atomic(using=alias):
        cancelled = jobs.add.enqueue(args=[1, 2], using=alias)
        kept = jobs.add.enqueue(args=[3, 4], using=alias)
        assert cancelled.cancel() is True

    assert rows(alias) == 0
    assert queued(outbox_on) == 1
    assert kept.status is JobStatus.QUEUED


def test_a_database_no_relay_sweeps_is_refused_at_the_door(
    outbox_on: RedisJobs,
) -> None:
    values = {**outbox_on.settings, "OUTBOX_DATABASES": ["postgres"]}
    with (
        override_settings(REDISJOBS=values),
        transaction.atomic(),
        pytest.raises(InvalidJob, match="'default' is not in"),
    ):
        jobs.add.delay(1, 2)
    assert rows("default") == 0


def test_redis_down_at_commit_then_back_every_job_runs_once(
    private_outbox: tuple[RedisServer, RedisJobs],
    alias: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, rj = private_outbox
    server.kill()
    with caplog.at_level(logging.WARNING, "django_redisjobs"):
        handles = commit_jobs(alias, COMMITTED)

    assert rows(alias) == COMMITTED
    assert {h.status for h in handles} == {JobStatus.PENDING}
    assert caplog.text.count("left to the outbox relay") == COMMITTED // PER_TRANSACTION
    # Pending handles look in Redis once their rows are committed.
    with pytest.raises(Exception, match="(?i)redis"):
        handles[0].refresh()

    server.restart()
    assert handles[0].refresh().status is JobStatus.PENDING
    relay = OutboxRelay(DATABASES, batch=128, grace=_ZERO)
    assert relay.sweep() == COMMITTED
    assert rows(alias) == 0
    assert relay.sweep() == 0
    assert_each_ran_once(rj, handles)


def test_several_relays_at_once_deliver_each_row_once(
    private_outbox: tuple[RedisServer, RedisJobs], alias: str
) -> None:
    server, rj = private_outbox
    server.kill()
    handles = commit_jobs(alias, COMMITTED)
    server.restart()
    relays = [OutboxRelay([alias], batch=25, grace=_ZERO) for _ in range(4)]
    threads = [threading.Thread(target=_sweep_until_empty, args=(r,)) for r in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    assert rows(alias) == 0
    assert sum(r.delivered for r in relays) >= COMMITTED
    if connections[alias].features.has_select_for_update_skip_locked:
        # SKIP LOCKED: no row was taken by two relays.
        assert sum(r.delivered for r in relays) == COMMITTED
        assert sum(r.stored for r in relays) == COMMITTED
    assert_each_ran_once(rj, handles)


def _sweep_until_empty(relay: OutboxRelay) -> None:
    for _ in range(200):
        try:
            if relay.sweep() == 0:
                break
        except Exception as err:  # SQLite: "database is locked" under contention
            logging.getLogger(__name__).info("relay sweep failed: %s", err)
    connections.close_all()


def test_relay_killed_between_redis_write_and_delete_doubles_nothing(
    private_outbox: tuple[RedisServer, RedisJobs], alias: str, tmp_path: Path
) -> None:
    """A real relay process dies (SIGKILL) right after its third batch is in
    Redis and before its rows are deleted; the next relay writes that batch
    again, and each job is still stored and run once."""
    server, rj = private_outbox
    server.kill()
    handles = commit_jobs(alias, COMMITTED)
    server.restart()
    batch = 100

    child = subprocess.run(
        [sys.executable, "-m", "tests.outbox_relay_child"],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "REDISJOBS_TEST_SETTINGS": json.dumps(rj.settings),
            "OUTBOX_CHILD": json.dumps(
                {
                    "alias": alias,
                    "database": _test_database(alias),
                    "batch": batch,
                    "die_after_writes": 3,
                }
            ),
        },
        capture_output=True,
        timeout=120,
    )

    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert rows(alias) == COMMITTED - 2 * batch
    assert queued(rj) == 3 * batch
    relay = OutboxRelay(DATABASES, batch=batch, grace=_ZERO)
    assert relay.sweep() == COMMITTED - 2 * batch
    assert relay.stored == COMMITTED - 3 * batch  # the third batch was known
    assert rows(alias) == 0
    assert queued(rj) == COMMITTED
    assert_each_ran_once(rj, handles)


def _test_database(alias: str) -> dict[str, str]:
    """Where the test database of `alias` is, for a child process."""
    db = settings.DATABASES[alias]
    return {"NAME": str(db["NAME"]), "HOST": str(db["HOST"]), "PORT": str(db["PORT"])}


def test_relay_thread_waits_out_an_outage_and_says_so_once(
    private_outbox: tuple[RedisServer, RedisJobs],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, rj = private_outbox
    server.kill()
    handles = commit_jobs("default", 200)
    relay = OutboxRelay(["default"], poll=timedelta(milliseconds=20), grace=_ZERO)
    with caplog.at_level(logging.INFO, "django_redisjobs.relay"):
        thread = relay.start()
        wait_until(lambda: "cannot deliver" in caplog.text, what="a warning")
        time.sleep(0.3)  # several failed sweeps, one warning
        server.restart()
        wait_until(lambda: rows("default") == 0, what="the relay to deliver")
        relay.stop()
        thread.join(timeout=10)

    assert not thread.is_alive()
    assert caplog.text.count("cannot deliver") == 1
    assert "rows waiting default=200" in caplog.text
    assert "delivering again" in caplog.text
    assert relay.stored == 200
    assert_each_ran_once(rj, handles)


def test_commands_relay_the_outbox(
    private_outbox: tuple[RedisServer, RedisJobs], alias: str
) -> None:
    server, rj = private_outbox
    server.kill()
    first = commit_jobs(alias, 100)
    with pytest.raises(CommandError, match="Outbox delivery failed after 0 row"):
        call_command("relay_outbox", "--once", stdout=io.StringIO())
    server.restart()

    out = io.StringIO()
    call_command("relay_outbox", "--once", stdout=out)
    assert out.getvalue() == "Moved 100 outbox row(s) to Redis.\n"
    assert_each_ran_once(rj, first)

    # A burst worker moves what the outbox holds before it starts claiming.
    fault_jobs.reset()
    server.kill()  # no persistence: the first jobs are gone with it
    second = commit_jobs(alias, 100)
    server.restart()
    call_command("runworker", "--burst", stdout=io.StringIO())
    assert rows(alias) == 0
    assert_each_ran_once(rj, second)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--batch", "0"], "--batch must be 1"), (["--poll", "0"], "--poll must be")],
)
def test_relay_command_refuses_bad_options(
    outbox_on: RedisJobs, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("relay_outbox", *args)
