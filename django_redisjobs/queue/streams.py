"""Event streams: appending events, and the consumer groups that turn them into
subscriber jobs (see events.py and event_relay.py)."""

from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis

from .. import keys
from .base import StoreBase, redis_call
from .records import EventSummary, GroupSummary, StreamEntry


def _entries(reply: Any) -> list[StreamEntry]:
    return [
        StreamEntry(str(entry_id), dict(fields or {})) for entry_id, fields in reply
    ]


class StreamOps(StoreBase):
    """Append, read by group, acknowledge and take over stream entries."""

    @redis_call("Could not publish the event to Redis")
    def append_event(self, event: str, fields: Mapping[str, str], maxlen: int) -> str:
        """XADD to the event's stream, trimmed to about `maxlen` entries; the
        entry id Redis gave."""
        return str(
            self.client.xadd(
                keys.event_stream(self.prefix, event),
                dict(fields),  # type: ignore[arg-type]  # redis-py wants a wider dict
                maxlen=maxlen,
                approximate=True,
            )
        )

    @redis_call("Could not create a subscriber group in Redis")
    def ensure_group(self, event: str, subscriber: str, start: str) -> None:
        """Create the subscriber's group on the event's stream (and the stream),
        reading from `start` ("$": new entries only, "0": the whole stream); an
        existing group keeps its place."""
        stream = keys.event_stream(self.prefix, event)
        group = keys.event_group(self.prefix, subscriber)
        try:
            self.client.xgroup_create(stream, group, id=start, mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        self.client.sadd(keys.events(self.prefix), event)

    @redis_call("Could not read events from Redis")
    def read_group(
        self,
        event: str,
        subscriber: str,
        consumer: str,
        count: int,
        block_ms: int | None,
    ) -> list[StreamEntry]:
        """New entries for the subscriber's group, waiting up to `block_ms` for
        one (None: not at all)."""
        reply = self.client.xreadgroup(
            keys.event_group(self.prefix, subscriber),
            consumer,
            {keys.event_stream(self.prefix, event): ">"},
            count=count,
            block=block_ms,
        )
        if not reply:
            return []
        return _entries(cast(list[Any], reply)[0][1])

    @redis_call("Could not take over pending events in Redis")
    def take_over(
        self, event: str, subscriber: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[StreamEntry]:
        """Entries another consumer read and did not acknowledge for `min_idle_ms`
        (it died), now the caller's (XAUTOCLAIM, one page)."""
        reply = self.client.xautoclaim(
            keys.event_stream(self.prefix, event),
            keys.event_group(self.prefix, subscriber),
            consumer,
            min_idle_time=min_idle_ms,
            start_id="0-0",
            count=count,
        )
        return _entries(reply[1])

    @redis_call("Could not acknowledge events in Redis")
    def ack(self, event: str, subscriber: str, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            self.client.xack(
                keys.event_stream(self.prefix, event),
                keys.event_group(self.prefix, subscriber),
                *entry_ids,
            )

    @redis_call("Could not write a dead event entry to Redis")
    def dead_letter(self, event: str, fields: Mapping[str, str], maxlen: int) -> None:
        """XADD to the event's dead stream: an entry no subscriber job was made
        for, with the reason; people and the admin read it there."""
        self.client.xadd(
            keys.event_dead(self.prefix, event),
            dict(fields),  # type: ignore[arg-type]  # redis-py wants a wider dict
            maxlen=maxlen,
            approximate=True,
        )

    @redis_call("Could not read event streams from Redis")
    def event_groups(self) -> dict[str, list[dict[str, Any]]]:
        """Per event name that has had a subscriber: its stream's groups (XINFO
        GROUPS: name, pending, lag, ...)."""
        names = sorted(cast(set[str], self.client.smembers(keys.events(self.prefix))))
        groups: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            try:
                info = self.client.xinfo_groups(keys.event_stream(self.prefix, name))
            except redis.ResponseError:
                info = []  # the stream is gone (deleted by hand)
            groups[name] = [dict(group) for group in cast(list[Any], info)]
        return groups

    @redis_call("Could not read event streams from Redis")
    def event_summaries(self, limit: int = 100) -> list[EventSummary]:
        """The first `limit` event names (sorted) that have had a subscriber, each
        with its stream's and dead stream's lengths and its groups: one pipeline
        of XLEN and XINFO GROUPS per name."""
        names = sorted(cast(set[str], self.client.smembers(keys.events(self.prefix))))
        names = names[:limit]
        with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.xlen(keys.event_stream(self.prefix, name))
                pipe.xlen(keys.event_dead(self.prefix, name))
                pipe.xinfo_groups(keys.event_stream(self.prefix, name))
            replies = pipe.execute(raise_on_error=False)
        summaries = []
        ours = f"{self.prefix}:"
        for index, name in enumerate(names):
            length, dead, groups = replies[index * 3 : index * 3 + 3]
            rows = [] if isinstance(groups, Exception) else groups
            summaries.append(
                EventSummary(
                    name,
                    0 if isinstance(length, Exception) else int(length),
                    0 if isinstance(dead, Exception) else int(dead),
                    [
                        GroupSummary(
                            str(g["name"]),
                            str(g["name"])[len(ours) :]
                            if str(g["name"]).startswith(ours)
                            else "",
                            int(g.get("pending") or 0),
                            None if g.get("lag") is None else int(g["lag"]),
                        )
                        for g in rows
                    ],
                )
            )
        return summaries

    @redis_call("Could not read events from Redis")
    def recent_events(self, event: str, count: int) -> list[StreamEntry]:
        """The event's newest `count` entries, newest first (XREVRANGE)."""
        reply = self.client.xrevrange(
            keys.event_stream(self.prefix, event), count=count
        )
        return _entries(reply)
