"""Redis outages while workers run: killed connections, pauses, a crash and restart.

Each test has a private redis-server. Two workers serve the same queue with one
thread each: the holder and the rival each run a held job, so both hold a lease
through the outage and each one's scheduler could wrongly take back the other's
job once Redis answers again. Every job must end exactly once.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta

import pytest
import redis

from django_redisjobs import JobHandle, JobStatus, keys
from django_redisjobs.exceptions import RedisUnavailable
from tests import fault_jobs, jobs
from tests.conftest import RedisJobs
from tests.faults import (
    all_finished,
    fresh_fault_jobs,
    redisjobs_on,
    running,
    status_of,
)
from tests.polling import wait_until
from tests.servers import RedisServer

MakeServer = Callable[..., RedisServer]
LEASE_S = 0.5
OUTAGE_S = 3 * LEASE_S  # long enough for every lease to run out in Redis


@pytest.fixture(autouse=True)
def _fault_jobs() -> Iterator[None]:
    with fresh_fault_jobs():
        yield


def holder_and_rival(rj: RedisJobs, stack: ExitStack) -> list[JobHandle]:
    """Start two one-thread workers, each running a held job (h1 and h2)."""
    held = []
    for name, job in (("holder", "h1"), ("rival", "h2")):
        worker = rj.worker(
            name=name,
            burst=False,
            concurrency=1,
            prefetch=0,
            idle_wait=timedelta(seconds=0.1),
        )
        stack.enter_context(running(worker))
        handle = fault_jobs.held.delay(job)
        wait_until(
            lambda h=handle: status_of(h) is JobStatus.ACTIVE,
            what=f"{name} to run {job}",
        )
        assert handle.job.worker == name
        held.append(handle)
    return held


def assert_each_ran_once(handles: list[JobHandle]) -> None:
    for handle in handles:
        handle.refresh()
        assert handle.status is JobStatus.SUCCEEDED, handle.job
        assert fault_jobs.runs[handle.id] == 1, handle.job


def test_worker_reconnects_after_redis_kills_its_connections(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    with redisjobs_on(server, LEASE_S=LEASE_S) as rj, server.client() as admin:
        handles = [fault_jobs.sleeper.delay(0.02) for _ in range(60)]
        worker = rj.worker(burst=False, concurrency=4, idle_wait=timedelta(0, 0.1))
        with running(worker):
            for done in (10, 25, 40):
                wait_until(
                    lambda done=done: worker.stats.succeeded >= done, what="progress"
                )
                assert admin.client_kill_filter(_type="normal") >= 1
            wait_until(lambda: all_finished(handles), what="every job to end")

        assert_each_ran_once(handles)


@pytest.mark.parametrize("pause", ["CLIENT PAUSE", "DEBUG SLEEP"])
def test_jobs_end_once_across_a_redis_pause_longer_than_a_lease(
    make_redis_server: MakeServer, pause: str
) -> None:
    server = make_redis_server(enable_debug_command="yes")
    with redisjobs_on(server, LEASE_S=LEASE_S) as rj, server.client() as admin:
        with ExitStack() as stack:
            held = holder_and_rival(rj, stack)
            queued = [fault_jobs.quick.delay(n) for n in range(5)]
            if pause == "CLIENT PAUSE":
                admin.client_pause(int(OUTAGE_S * 1000))
                fault_jobs.gate("h1").set()  # its outcome waits for the pause
                time.sleep(OUTAGE_S)
            else:
                fault_jobs.gate("h1").set()
                admin.execute_command("DEBUG", "SLEEP", OUTAGE_S)
            fault_jobs.gate("h2").set()
            wait_until(lambda: all_finished(held + queued), what="every job to end")

        assert_each_ran_once(held + queued)
        assert [h.job.worker for h in held] == ["holder", "rival"]
        assert [(h.attempts, h.job.lost) for h in held] == [(1, 0), (1, 0)]


def test_jobs_survive_a_redis_crash_and_restart_with_aof(
    make_redis_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis_server(appendonly="yes", appendfsync="always")
    with (
        redisjobs_on(server, LEASE_S=LEASE_S) as rj,
        caplog.at_level(logging.INFO, "django_redisjobs"),
    ):
        with ExitStack() as stack:
            held = holder_and_rival(rj, stack)
            queued = [fault_jobs.quick.delay(n) for n in range(5)]
            delayed = fault_jobs.quick.enqueue((99,), delay=timedelta(seconds=1))
            assert delayed.status is JobStatus.SCHEDULED

            server.kill()
            # h1 ends while Redis is down: its outcome must wait in the holder.
            fault_jobs.gate("h1").set()
            assert fault_jobs.ended("h1").wait(10)
            time.sleep(OUTAGE_S)
            server.restart()
            # A worker that starts now finds h1's and h2's leases expired; it must
            # leave them to their holders, which reconnect a moment later.
            stack.enter_context(
                running(
                    rj.worker(
                        name="newcomer",
                        burst=False,
                        concurrency=2,
                        idle_wait=timedelta(seconds=0.1),
                    )
                )
            )
            # h2 ran through the outage and ends after it.
            fault_jobs.gate("h2").set()
            everything = [*held, *queued, delayed]
            wait_until(lambda: all_finished(everything), what="every job to end")

        assert_each_ran_once(everything)
        assert [h.job.worker for h in held] == ["holder", "rival"]
        assert [(h.attempts, h.job.lost) for h in held] == [(1, 0), (1, 0)]
        assert held[0].result == "h1"
        assert delayed.result == 99
    assert "redis reachable again during recording outcomes" in caplog.text
    assert "outcome not recorded" not in caplog.text


def test_timeouts_are_enforced_while_redis_is_down(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server(appendonly="yes", appendfsync="always")
    with redisjobs_on(server, LEASE_S=LEASE_S) as rj:
        handle = jobs.sleeps.delay(10.0)  # timeout 0.2 s
        worker = rj.worker(burst=False, idle_wait=timedelta(seconds=0.1))
        with running(worker):
            wait_until(lambda: status_of(handle) is JobStatus.ACTIVE, what="claim")
            server.kill()
            wait_until(lambda: worker.stats.dead == 1, timeout_s=3, what="timeout")
            server.restart()
            wait_until(lambda: all_finished([handle]), what="the outcome")

        assert handle.error is not None
        assert handle.error.exc_class == "django_redisjobs.exceptions.JobTimeout"


def test_enqueue_cut_off_mid_call_is_sent_again_once_on_a_new_connection(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    with redisjobs_on(server) as rj, server.client() as admin:
        jobs.add.delay(0, 0)  # a pooled connection, ready for the next call
        admin.client_pause(2000, all=False)  # holds writes, so the call waits
        done: list[JobHandle] = []
        producer = threading.Thread(target=lambda: done.append(jobs.add.delay(1, 2)))
        producer.start()

        def waiting_producer() -> list[int]:
            return [int(c["id"]) for c in admin.client_list() if c["cmd"] == "evalsha"]

        wait_until(waiting_producer, what="the enqueue to wait on the pause")
        (client_id,) = waiting_producer()
        assert admin.client_kill_filter(_id=client_id) == 1
        admin.client_unpause()
        producer.join(timeout=5)

        (handle,) = done
        assert handle.refresh().status is JobStatus.QUEUED
        assert rj.client.llen(keys.ready(rj.prefix, "default")) == 2


def test_every_idle_script_connection_is_stale_after_a_restart(
    make_redis_server: MakeServer,
) -> None:
    """Script calls keep their connections between calls. After a restart each of
    them is dead, and a call on each must still go through on its one resend."""
    server = make_redis_server()
    with redisjobs_on(server) as rj, server.client() as admin:
        jobs.add.delay(0, 0)  # the script is loaded and the queue name sent
        enqueues_at_once(admin, 3)  # three connections, idle afterwards
        server.restart()
        jobs.add.delay(0, 0)  # loads the script again (NOSCRIPT, not a resend)

        handles = enqueues_at_once(admin, 3)

        assert [h.refresh().status for h in handles] == [JobStatus.QUEUED] * 3
        assert rj.client.llen(keys.ready(rj.prefix, "default")) == 4


def enqueues_at_once(admin: redis.Redis, count: int) -> list[JobHandle]:
    """Enqueue from `count` threads while Redis holds writes, so that each call
    takes a connection of its own."""
    admin.client_pause(2000, all=False)
    done: list[JobHandle] = []
    producers = [
        threading.Thread(target=lambda: done.append(jobs.add.delay(1, 2)))
        for _ in range(count)
    ]
    for producer in producers:
        producer.start()
    wait_until(
        lambda: sum("b" in c["flags"] for c in admin.client_list()) == count,
        what=f"{count} enqueues waiting on {count} connections",
    )
    admin.client_unpause()
    for producer in producers:
        producer.join(timeout=5)
    assert len(done) == count
    return done


def test_a_script_call_that_times_out_leaves_no_reply_for_the_next_call(
    make_redis_server: MakeServer,
) -> None:
    """A reply that arrives after its caller gave up must never be read as the
    reply of the next call on a connection that scripts keep between calls."""
    server = make_redis_server()
    options = {"socket_timeout": 0.2}
    with redisjobs_on(server, REDIS_OPTIONS=options), server.client() as admin:
        holder = jobs.add.enqueue((0, 0), unique_key="k")
        admin.client_pause(700, all=False)  # longer than the call and its resend
        with pytest.raises(RedisUnavailable):
            jobs.add.delay(1, 2)
        time.sleep(0.8)  # the paused call (and its resend) now ran: two replies

        # Its reply names the holder; the stale one would say "stored".
        handle = jobs.add.enqueue((3, 4), unique_key="k")

        assert handle.id == holder.id
        assert handle.refresh().job.args == [0, 0]


def test_script_calls_leave_a_small_pool_its_connections(
    make_redis_server: MakeServer,
) -> None:
    """Connections that scripts keep between calls are out of the pool's reach;
    with max_connections=2 they must all go back to it."""
    server = make_redis_server()
    options = {"max_connections": 2}
    with (
        redisjobs_on(server, REDIS_OPTIONS=options) as rj,
        server.client() as admin,
    ):
        jobs.add.delay(0, 0)
        enqueues_at_once(admin, 2)

        assert rj.client.ping()  # a plain command needs a connection of the pool
        assert jobs.add.delay(1, 2).refresh().status is JobStatus.QUEUED
