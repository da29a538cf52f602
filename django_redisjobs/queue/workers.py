"""The worker registry: heartbeats, workers that stopped or vanished, and what
the server says about keeping jobs."""

import contextlib
from typing import Any

import redis

from .. import keys
from .base import StoreBase
from .records import Persistence, WorkerInfo


class WorkerOps(StoreBase):
    """Who is working: each worker's entry, kept alive by its heartbeat."""

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

    def trim_workers(self, now_ms: int) -> int:
        """Drop workers whose heartbeat expired (their hashes expire by themselves)."""
        return int(
            self.client.zremrangebyscore(keys.workers(self.prefix), "-inf", now_ms)
        )

    def unregister_worker(self, worker_id: str) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.workers(self.prefix), worker_id)
            pipe.delete(keys.worker(self.prefix, worker_id))
            pipe.execute()

    def persistence(self) -> Persistence:
        """What the server says about keeping jobs across a restart and under memory
        pressure: ``CONFIG GET``, or ``INFO`` where a managed Redis refuses CONFIG.

        A fact neither command gives is None. Raises `RedisUnavailable`.
        """
        config: dict[str, str] = {}
        with contextlib.suppress(redis.ResponseError):
            config = self._read(
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
            with contextlib.suppress(redis.ResponseError):
                facts.update(self._read(lambda s=section: self.client.info(s)))
        aof = facts.get("aof_enabled")
        return Persistence(
            None if aof is None else bool(int(aof)),
            config.get("appendfsync"),
            facts.get("maxmemory_policy"),
        )
