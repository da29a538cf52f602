"""The store's one error contract (queue package docstring, docs/internals.md).

Every public `JobStore` method raises `RedisUnavailable`, chained to the redis-py
error, when Redis cannot serve it: stopped, timed out, out of memory, read-only.
Other Redis errors come out unchanged. The outage table below must name every
public method, so a method added without the contract fails here.
"""

import dataclasses
import inspect
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.test import override_settings

from django_redisjobs import JobHandle, keys
from django_redisjobs.conf import Settings, get_settings
from django_redisjobs.connection import build_client, connect
from django_redisjobs.context import JobContext
from django_redisjobs.exceptions import RedisUnavailable
from django_redisjobs.execution import cancelled_before_start
from django_redisjobs.job import Job
from django_redisjobs.queue import (
    EnqueueRequest,
    JobState,
    JobStore,
    Outcome,
    WorkerInfo,
)
from django_redisjobs.queue.records import REDIS_ERRORS
from tests.conftest import RedisJobs
from tests.servers import RedisServer, free_port

NOW = 1_700_000_000_000
LEASE_MS = 30_000
Q = "default"
JOB = Job(id="0" * 32, func="tests.jobs.add", queue=Q, max_attempts=1)
REQUEST = EnqueueRequest(JOB, "[]", "{}")
INFO = WorkerInfo("w1", "host", 1, (Q,), 1, NOW)

Call = Callable[[JobStore], object]

# One call per public method, each reaching Redis.
CALLS: dict[str, Call] = {
    "enqueue": lambda s: s.enqueue([REQUEST], NOW),
    "enqueue_detailed": lambda s: s.enqueue_detailed([REQUEST], NOW),
    "add_known_queues": lambda s: s.add_known_queues([Q]),
    "claim": lambda s: s.claim(Q, "w1", 1, NOW, LEASE_MS),
    "wait_then_claim": lambda s: s.wait_then_claim([Q], 0.01, "w1", 1, NOW, LEASE_MS),
    "finish": lambda s: s.finish([Outcome(JOB.id, Q, 1, "succeeded")], "w1", NOW),
    "renew_leases": lambda s: s.renew_leases({Q: [JOB.id]}, NOW),
    "held_by": lambda s: s.held_by("w1", Q),
    "promote_due": lambda s: s.promote_due(Q, NOW, 10),
    "recover_expired": lambda s: s.recover_expired(Q, NOW, 10),
    "recover_worker": lambda s: s.recover_worker(Q, "w1", "killed", NOW),
    "trim_finished": lambda s: s.trim_finished(Q, NOW),
    "get": lambda s: s.get(JOB.id, Q),
    "get_many": lambda s: s.get_many([JOB.id], Q),
    "locate": lambda s: s.locate(JOB.id),
    "known_queues": lambda s: s.known_queues(),
    "counts": lambda s: s.counts(Q),
    "list_ids": lambda s: s.list_ids(Q, JobState.QUEUED, 0, 10),
    "cancel": lambda s: s.cancel(JOB.id, Q, NOW),
    "cancel_requested": lambda s: s.cancel_requested(JOB.id, Q),
    "set_progress": lambda s: s.set_progress(JOB.id, Q, ("w1", 1), 0.5, "half"),
    "retry": lambda s: s.retry([JOB.id], Q, NOW),
    "retry_dead": lambda s: s.retry_dead(Q, NOW),
    "cancel_many": lambda s: s.cancel_many([JOB.id], Q, NOW),
    "delete": lambda s: s.delete([JOB.id], Q),
    "purge_dead": lambda s: s.purge_dead(Q),
    "empty_ready": lambda s: s.empty_ready(Q),
    "pause": lambda s: s.pause(Q),
    "resume": lambda s: s.resume(Q),
    "paused_queues": lambda s: s.paused_queues([Q]),
    "summaries": lambda s: s.summaries([Q]),
    "rows": lambda s: s.rows([JOB.id], Q),
    "job_fields": lambda s: s.job_fields(JOB.id, Q),
    "ids_of_function": lambda s: s.ids_of_function(Q, JobState.DEAD, "add"),
    "live_workers": lambda s: s.live_workers(),
    "lost_workers": lambda s: s.lost_workers(NOW),
    "held_jobs": lambda s: s.held_jobs([Q]),
    "outcome_counts": lambda s: s.outcome_counts([Q], "m", NOW // 60_000, 60),
    "server_info": lambda s: s.server_info(),
    "watch_end": lambda s: s.watch_end(JOB.id, Q),
    "heartbeat": lambda s: s.heartbeat(INFO, NOW, {"succeeded": 1}),
    "trim_workers": lambda s: s.trim_workers(NOW),
    "unregister_worker": lambda s: s.unregister_worker("w1"),
    "persistence": lambda s: s.persistence(),
    "ping": lambda s: s.ping(),
    "check_access": lambda s: s.check_access(NOW),
    "append_event": lambda s: s.append_event("e", {"id": "1"}, 10),
    "dead_letter": lambda s: s.dead_letter("e", {"id": "1"}, 10),
    "ensure_group": lambda s: s.ensure_group("e", "tests.f", "$"),
    "read_group": lambda s: s.read_group("e", "tests.f", "c", 1, None),
    "take_over": lambda s: s.take_over("e", "tests.f", "c", 0, 1),
    "ack": lambda s: s.ack("e", "tests.f", ["1-0"]),
    "event_groups": lambda s: s.event_groups(),
    "event_summaries": lambda s: s.event_summaries(),
    "recent_events": lambda s: s.recent_events("e", 5),
    "claim_cron": lambda s: s.claim_cron("nightly", Q, [REQUEST], NOW, NOW),
    "cron_states": lambda s: s.cron_states(Q, ["nightly"]),
    "touch_cron_entries": lambda s: s.touch_cron_entries({Q: ["nightly"]}, NOW),
    "cron_entry_names": lambda s: s.cron_entry_names(Q),
    "forget_cron_entries": lambda s: s.forget_cron_entries(Q, ["nightly"], NOW),
}
# Public methods that never talk to Redis, so no outage can reach them.
WITHOUT_REDIS = {"end_channel"}

# Writes Redis refuses on a read-only replica: a script call, plain commands and
# pipelines.
REFUSED_BY_A_REPLICA = [
    "enqueue",
    "enqueue_detailed",
    "add_known_queues",
    "renew_leases",
    "trim_finished",
    "heartbeat",
    "trim_workers",
    "unregister_worker",
    "touch_cron_entries",
    "retry",
    "delete",
    "pause",
    "resume",
]
# Writes Redis refuses when over maxmemory under noeviction (commands that may
# grow memory; deletions still run).
REFUSED_WHEN_FULL = [
    "enqueue",
    "add_known_queues",
    "renew_leases",
    "heartbeat",
    "touch_cron_entries",
    "pause",
]


def public_methods() -> set[str]:
    return {
        name
        for name, _ in inspect.getmembers(JobStore, inspect.isfunction)
        if not name.startswith("_")
    }


def store_on(server: RedisServer, **settings: object) -> JobStore:
    """A store of its own on `server`, outside the shared connection cache."""
    with override_settings(
        REDISJOBS={"REDIS_URL": server.url, "PREFIX": "errors", **settings}
    ):
        config: Settings = get_settings()
    client = build_client(config)
    return JobStore(connect(client), config)


@pytest.fixture(scope="module")
def stopped_store() -> Iterator[JobStore]:
    """A store whose Redis answered once, with connections in its pools, and was
    then stopped."""
    with RedisServer() as server:
        store = store_on(server)
        store.enqueue([REQUEST], NOW)
        store.claim(Q, "w1", 1, NOW, LEASE_MS)
        server.stop()
        yield store
        store.connection.close()


@pytest.fixture(scope="module")
def replica_store() -> Iterator[JobStore]:
    """A store on a read-only replica."""
    with (
        RedisServer() as primary,
        RedisServer(replicaof=f"127.0.0.1 {primary.port}") as replica,
    ):
        store = store_on(replica)
        yield store
        store.connection.close()


@pytest.fixture(scope="module")
def masterdown_store() -> Iterator[JobStore]:
    """A store on a replica whose primary is gone, told not to serve stale data."""
    with RedisServer() as replica:
        # Set after start: the server's own start-up check needs PING to answer.
        with replica.client() as admin:
            admin.config_set("replica-serve-stale-data", "no")
            admin.replicaof("127.0.0.1", free_port())
        store = store_on(replica)
        yield store
        store.connection.close()


@pytest.fixture(scope="module")
def full_store() -> Iterator[JobStore]:
    """A store on a Redis over its maxmemory, with noeviction."""
    with RedisServer(maxmemory_policy="noeviction") as server:
        # A running server holds more than 1 MB: it is over the limit at once.
        server.client().config_set("maxmemory", "1mb")
        store = store_on(server)
        yield store
        store.connection.close()


def test_every_public_store_method_is_in_the_outage_table() -> None:
    missing = public_methods() - set(CALLS) - WITHOUT_REDIS
    assert not missing, f"add these JobStore methods to CALLS: {sorted(missing)}"
    assert set(CALLS) | WITHOUT_REDIS == public_methods()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_store_method_raises_redis_unavailable_when_redis_is_stopped(
    stopped_store: JobStore, name: str
) -> None:
    with pytest.raises(RedisUnavailable, match=": Error 111 connecting") as caught:
        CALLS[name](stopped_store)
    assert isinstance(caught.value.__cause__, redis.ConnectionError)


@pytest.mark.parametrize("name", sorted(WITHOUT_REDIS))
def test_methods_without_redis_work_while_redis_is_stopped(
    stopped_store: JobStore, name: str
) -> None:
    getattr(stopped_store, name)(JOB.id, Q)


@pytest.mark.parametrize("name", REFUSED_BY_A_REPLICA)
def test_writes_to_a_read_only_replica_raise_redis_unavailable(
    replica_store: JobStore, name: str
) -> None:
    with pytest.raises(RedisUnavailable, match="read only replica") as caught:
        CALLS[name](replica_store)
    assert isinstance(caught.value.__cause__, redis.exceptions.ReadOnlyError)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_replica_whose_primary_is_down_raises_redis_unavailable(
    masterdown_store: JobStore, name: str
) -> None:
    """Reads get MASTERDOWN and writes READONLY; a few calls (SUBSCRIBE, CONFIG
    GET) still work. Nothing raises a redis-py error of its own."""
    try:
        CALLS[name](masterdown_store)
    except RedisUnavailable as err:
        assert isinstance(
            err.__cause__,
            redis.exceptions.MasterDownError | redis.exceptions.ReadOnlyError,
        ), err.__cause__


def test_a_server_loading_its_data_counts_as_unavailable() -> None:
    # redis-py makes LOADING a ConnectionError; no server stays loading for long
    # enough to test it in place.
    assert issubclass(redis.exceptions.BusyLoadingError, REDIS_ERRORS)


@pytest.mark.parametrize("name", REFUSED_WHEN_FULL)
def test_writes_to_a_full_redis_raise_redis_unavailable(
    full_store: JobStore, name: str
) -> None:
    with pytest.raises(RedisUnavailable, match="maxmemory") as caught:
        CALLS[name](full_store)
    assert isinstance(caught.value.__cause__, redis.exceptions.OutOfMemoryError)


@pytest.mark.parametrize("name", ["counts", "claim", "heartbeat"])
def test_a_timeout_raises_redis_unavailable(
    make_redis_server: Callable[..., RedisServer], name: str
) -> None:
    server = make_redis_server()
    store = store_on(server, REDIS_OPTIONS={"socket_timeout": 0.05})
    store.ping()  # connected before the pause
    server.client().client_pause(1_000)
    try:
        with pytest.raises(RedisUnavailable, match="Timeout") as caught:
            CALLS[name](store)
        assert isinstance(caught.value.__cause__, redis.TimeoutError)
    finally:
        server.client().client_unpause()
        store.connection.close()


def test_an_end_watch_raises_redis_unavailable_when_redis_stops(
    make_redis_server: Callable[..., RedisServer],
) -> None:
    server = make_redis_server()
    store = store_on(server)
    with store.watch_end(JOB.id, Q) as watch:
        watch.wait(0.01)
        server.stop()
        with pytest.raises(RedisUnavailable, match="Could not listen to Redis"):
            watch.wait(0.01)
    store.connection.close()


# -- other errors: bugs and damaged data ----------------------------------------


@pytest.mark.parametrize("name", ["counts", "enqueue", "claim", "list_ids"])
def test_a_wrongtype_error_from_damaged_data_is_not_an_outage(
    redisjobs: RedisJobs, name: str
) -> None:
    redisjobs.client.set(keys.ready(redisjobs.prefix, Q), "not a list")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE") as caught:
        CALLS[name](redisjobs.store)
    assert not isinstance(caught.value, RedisUnavailable)


# -- callers outside the store ---------------------------------------------------


def test_set_progress_in_a_job_logs_and_goes_on_while_redis_is_down(
    stopped_store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    context = JobContext(JOB.id, Q, JOB.func, 1, 1, stopped_store)
    with caplog.at_level(logging.WARNING, "django_redisjobs.context"):
        context.set_progress(0.5)
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(f"could not store progress job id={JOB.id}")


def test_a_prefetched_job_runs_when_its_cancel_flag_cannot_be_read(
    stopped_store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    waited = dataclasses.replace(JOB, started_at=datetime(2024, 1, 1, tzinfo=UTC))
    with caplog.at_level(logging.WARNING, "django_redisjobs.execution"):
        assert cancelled_before_start(waited, stopped_store) is None
    assert "could not read cancel flag" in caplog.text


def test_a_handle_raises_redis_unavailable_while_redis_is_down(
    make_redis_server: Callable[..., RedisServer],
) -> None:
    server = make_redis_server()
    with override_settings(REDISJOBS={"REDIS_URL": server.url, "PREFIX": "h"}):
        handle = JobHandle(JOB)
        server.stop()
        with pytest.raises(RedisUnavailable):
            handle.wait(timedelta(seconds=1))
        with pytest.raises(RedisUnavailable):
            handle.cancel()
        with pytest.raises(RedisUnavailable):
            JobHandle.load(JOB.id)
