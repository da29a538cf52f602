"""The worker registry: heartbeats, workers that stopped or vanished, and what
the server says about keeping jobs."""

import functools
from collections.abc import Callable
from typing import Any, cast

import redis

from .. import keys
from .base import StoreBase, redis_call
from .records import REDIS_ERRORS, Persistence, WorkerInfo

_PROBE_KINDS = ("string", "hash", "list", "zset", "set")
#: How long the ids of workers whose heartbeat expired are kept.
LOST_WORKERS_KEPT_MS = 3_600_000


class WorkerOps(StoreBase):
    """Who is working: each worker's entry, kept alive by its heartbeat."""

    @redis_call("Could not send a heartbeat to Redis")
    def heartbeat(
        self, info: WorkerInfo, expires_ms: int, stats: dict[str, int]
    ) -> None:
        """Publish that the worker lives until `expires_ms`, with its counters."""
        key = keys.worker(self.prefix, info.worker_id)
        with self.client.pipeline(transaction=False) as pipe:
            # The queues set comes back after Redis lost its data (see enqueue).
            pipe.sadd(keys.queues(self.prefix), *info.queues)
            pipe.zadd(keys.workers(self.prefix), {info.worker_id: expires_ms})
            fields: dict[str | bytes, str | int] = {
                "hostname": info.hostname,
                "pid": info.pid,
                "queues": ",".join(info.queues),
                "concurrency": info.concurrency,
                "started_ms": info.started_ms,
                "expires_ms": expires_ms,
            }
            fields.update(stats)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis-py wants a wider dict
            pipe.pexpireat(key, expires_ms)
            pipe.execute()

    @redis_call("Could not trim workers in Redis")
    def trim_workers(self, now_ms: int) -> int:
        """Drop workers whose heartbeat expired (their hashes expire by themselves)
        and keep their ids (at most 1000 per call) an hour in the lost-workers set
        for the admin. Returns how many were dropped.

        A worker whose heartbeat arrives between the read and the removal stays
        registered, though it may be listed as lost once.
        """
        workers_key = keys.workers(self.prefix)
        lost_key = keys.lost_workers(self.prefix)
        expired = cast(
            list[tuple[str, float]],
            self.client.zrange(
                workers_key,
                "-inf",
                now_ms,
                byscore=True,
                offset=0,
                num=1000,
                withscores=True,
            ),
        )
        with self.client.pipeline(transaction=False) as pipe:
            # By score, not by the ids read: a worker whose heartbeat came in
            # since the read has a later score and stays.
            pipe.zremrangebyscore(workers_key, "-inf", now_ms)
            if expired:
                pipe.zadd(lost_key, dict(expired))
            pipe.zremrangebyscore(lost_key, "-inf", now_ms - LOST_WORKERS_KEPT_MS)
            dropped, *_ = pipe.execute()
        return int(dropped)

    @redis_call("Could not unregister the worker in Redis")
    def unregister_worker(self, worker_id: str) -> None:
        """Remove the entry of a worker that stopped."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.workers(self.prefix), worker_id)
            pipe.delete(keys.worker(self.prefix, worker_id))
            pipe.execute()

    @redis_call("Could not read from Redis")
    def persistence(self) -> Persistence:
        """What the server says about keeping jobs across a restart and under memory
        pressure: ``CONFIG GET``, or ``INFO`` where a managed Redis refuses CONFIG.

        A fact neither command gives is None.
        """
        config = _unless_refused(
            lambda: self.client.config_get(
                "appendonly", "appendfsync", "maxmemory-policy"
            )
        )
        if "appendonly" in config and "maxmemory-policy" in config:
            return Persistence(
                config["appendonly"] == "yes",
                config.get("appendfsync"),
                config["maxmemory-policy"],
            )
        facts: dict[str, Any] = {}
        for section in ("persistence", "memory"):
            facts.update(_unless_refused(functools.partial(self.client.info, section)))
        aof = facts.get("aof_enabled")
        return Persistence(
            None if aof is None else bool(int(aof)),
            config.get("appendfsync"),
            facts.get("maxmemory_policy"),
        )

    @redis_call("Could not reach Redis")
    def ping(self) -> None:
        """Check that Redis answers (a command's start-up check)."""
        self.client.ping()

    @redis_call("Could not check access in Redis")
    def check_access(self, now_ms: int) -> list[str]:
        """Every command the app needs that the server refuses this user, as
        "NAME: reason"; empty when all run. Probes keys and a channel of its own
        under the prefix (deleted again), so it is safe on a live system.

        CONFIG GET is left out: the app only reads persistence settings with it,
        and does without when refused.
        """
        probe_keys = [keys.access_probe(self.prefix, kind) for kind in _PROBE_KINDS]
        channel = keys.access_channel(self.prefix)
        try:
            refused = self.scripts.check_access(probe_keys, [channel, now_ms])
        except redis.exceptions.NoPermissionError as err:
            return [f"EVALSHA: {err}"]  # no script runs at all
        probes: tuple[tuple[str, Callable[[], object]], ...] = (
            ("BZPOPMIN", lambda: self.client.bzpopmin(probe_keys[3], timeout=0.01)),
            ("SUBSCRIBE", lambda: _subscribe_once(self.client, channel)),
        )
        for name, call in probes:
            try:
                call()
            except redis.exceptions.NoPermissionError as err:
                refused.append(f"{name}: {err}")
        return refused


def _unless_refused(call: Callable[[], Any]) -> dict[str, Any]:
    """What `call` returns, or nothing when the server refuses the command (a
    managed Redis may disable CONFIG or INFO); an outage is still raised."""
    try:
        return dict(call())
    except REDIS_ERRORS:
        raise
    except redis.ResponseError:
        return {}


def _subscribe_once(client: redis.Redis, channel: str) -> None:
    with client.pubsub() as pubsub:  # type: ignore[no-untyped-call]  # unannotated
        pubsub.subscribe(channel)
        pubsub.get_message(timeout=1.0)  # the subscribe reply, or its error
