"""Cron entry state: claiming fire times once, and forgetting removed entries."""

from collections.abc import Mapping, Sequence
from typing import cast

from .. import keys
from ..job import from_ms, to_ms
from ..scripts import CronClaim
from .base import StoreBase, redis_call
from .enqueueing import jobs_argv
from .records import CronState, EnqueueRequest


def claim_cron_slot_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of claim_cron_slot.lua."""
    return (
        keys.cron(prefix, queue),
        keys.ready(prefix, queue),
        keys.prioritized(prefix, queue),
        keys.marker(prefix, queue),
        keys.job_prefix(prefix, queue),
    )


def forget_cron_entries_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of forget_cron_entries.lua."""
    return (keys.cron(prefix, queue),)


class CronOps(StoreBase):
    """Per-queue cron state, claimed atomically with the jobs it stores."""

    @redis_call("Could not claim cron fire times in Redis")
    def claim_cron(
        self,
        name: str,
        queue: str,
        requests: Sequence[EnqueueRequest],
        until_ms: int,
        now_ms: int,
    ) -> CronClaim:
        """Store the jobs of entry `name`'s fire times that no scheduler handled yet.

        Each request's ``job.run_at`` is its fire time. Fire times up to `until_ms`
        count as handled afterwards, stored or not (a missed-run policy skipped
        them). A new entry stores nothing; its first call starts its watermark.
        """
        fire_ms = [to_ms(r.job.run_at) if r.job.run_at else 0 for r in requests]
        args = jobs_argv([now_ms, name, until_ms], requests, fire_ms)
        return self.scripts.claim_cron_slot(
            claim_cron_slot_keys(self.prefix, queue), args
        )

    @redis_call("Could not read from Redis")
    def cron_states(self, queue: str, names: Sequence[str]) -> list[CronState]:
        """The stored state of each entry in `names` (all of one queue)."""
        fields = [f"{n}{suffix}" for n in names for suffix in ("", ":fired", ":seen")]
        values = self.client.hmget(keys.cron(self.prefix, queue), fields)
        return [
            CronState(*(from_ms(int(v)) if v else None for v in values[i : i + 3]))
            for i in range(0, len(values), 3)
        ]

    @redis_call("Could not store cron entry state in Redis")
    def touch_cron_entries(
        self, names: Mapping[str, Sequence[str]], now_ms: int
    ) -> None:
        """Record that a scheduler knows these entry names (by queue) at `now_ms`."""
        with self.client.pipeline(transaction=False) as pipe:
            for queue, queue_names in names.items():
                if queue_names:
                    seen = {f"{name}:seen": now_ms for name in queue_names}
                    pipe.hset(keys.cron(self.prefix, queue), mapping=seen)  # type: ignore[arg-type]  # redis-py wants a wider dict
            pipe.execute()

    @redis_call("Could not read from Redis")
    def cron_entry_names(self, queue: str) -> set[str]:
        """Names of the entries with state in `queue` (one small hash per queue)."""
        fields = cast(list[str], self.client.hkeys(keys.cron(self.prefix, queue)))
        return {field.split(":", 1)[0] for field in fields}

    @redis_call("Could not forget cron entries in Redis")
    def forget_cron_entries(
        self, queue: str, names: Sequence[str], cutoff_ms: int
    ) -> int:
        """Delete the state of `names` in `queue` where unseen since `cutoff_ms`."""
        if not names:
            return 0
        return self.scripts.forget_cron_entries(
            forget_cron_entries_keys(self.prefix, queue), [cutoff_ms, *names]
        )
