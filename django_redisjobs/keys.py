"""Every Redis key name the app uses, built from the configured prefix.

Each key that belongs to a queue carries the hash tag ``{prefix:queue}``, so every
key one script touches hashes to the same Redis Cluster slot.
"""

import re

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def is_safe_name(name: object) -> bool:
    """Tell whether `name` is a str that may appear in a key: letters, digits,
    '_', '.' and '-' only (no braces, spaces, colons or line breaks)."""
    # fullmatch, not match with "$": "$" also matches before a final newline.
    return isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None


def _tag(prefix: str, queue: str) -> str:
    return f"{prefix}:{{{prefix}:{queue}}}"


def ready(prefix: str, queue: str) -> str:
    """List of ready job ids at the default priority, head first."""
    return f"{_tag(prefix, queue)}:ready"


def prioritized(prefix: str, queue: str) -> str:
    """Sorted set of ready job ids at other priorities (`job.priority_score`)."""
    return f"{_tag(prefix, queue)}:prioritized"


def scheduled(prefix: str, queue: str) -> str:
    """Sorted set of job ids waiting for a time (delays, retries), scored by due ms."""
    return f"{_tag(prefix, queue)}:scheduled"


def active(prefix: str, queue: str) -> str:
    """Sorted set of claimed job ids, scored by lease deadline ms."""
    return f"{_tag(prefix, queue)}:active"


def succeeded(prefix: str, queue: str) -> str:
    """Sorted set of succeeded job ids by finish ms; trimmed to the result TTL."""
    return f"{_tag(prefix, queue)}:succeeded"


def dead(prefix: str, queue: str) -> str:
    """Sorted set of dead job ids, scored by finish ms; trimmed to the dead TTL."""
    return f"{_tag(prefix, queue)}:dead"


def cancelled(prefix: str, queue: str) -> str:
    """Sorted set of cancelled job ids by finish ms; trimmed to the result TTL."""
    return f"{_tag(prefix, queue)}:cancelled"


def retrying(prefix: str, queue: str) -> str:
    """Sorted set of the `retrying` job ids among `scheduled`, by due ms: an index
    that lets the admin count them apart from delayed jobs."""
    return f"{_tag(prefix, queue)}:retrying"


def marker(prefix: str, queue: str) -> str:
    """Sorted set with one member while jobs may be ready; idle workers block on it."""
    return f"{_tag(prefix, queue)}:marker"


def cron(prefix: str, queue: str) -> str:
    """Hash of the state of the cron entries that enqueue into the queue.

    Per entry name: ``name`` the ms up to which fire times are handled,
    ``name:fired`` the fire ms of the last job enqueued, ``name:seen`` the ms at
    which a scheduler that knows the entry last said so. The queue's hash tag lets
    one script claim a fire time and store its job atomically.
    """
    return f"{_tag(prefix, queue)}:cron"


def job_prefix(prefix: str, queue: str) -> str:
    """Key prefix of the queue's job hashes; scripts append the job id to it."""
    return f"{_tag(prefix, queue)}:job:"


def job(prefix: str, queue: str, job_id: str) -> str:
    """Hash of one job's fields."""
    return f"{job_prefix(prefix, queue)}{job_id}"


def unique_prefix(prefix: str, queue: str) -> str:
    """Key prefix of the queue's unique locks; scripts append a job's `unique_key`.

    The suffix comes after the queue's hash tag, so whatever it holds (even braces)
    the lock lies in the queue's cluster slot.
    """
    return f"{_tag(prefix, queue)}:unique:"


def unique(prefix: str, queue: str, unique_key: str) -> str:
    """String holding the id of the job that holds `unique_key` in the queue."""
    return f"{unique_prefix(prefix, queue)}{unique_key}"


def job_channel_prefix(prefix: str, queue: str) -> str:
    """Pub/sub channel prefix; a job's channel announces that it reached an end."""
    return f"{_tag(prefix, queue)}:done:"


def job_channel(prefix: str, queue: str, job_id: str) -> str:
    """Pub/sub channel that announces one job's end state."""
    return f"{job_channel_prefix(prefix, queue)}{job_id}"


def queues(prefix: str) -> str:
    """Set of every queue name that has had a job or a worker."""
    return f"{prefix}:queues"


def workers(prefix: str) -> str:
    """Sorted set of worker ids, scored by the ms at which their heartbeat expires."""
    return f"{prefix}:workers"


def worker(prefix: str, worker_id: str) -> str:
    """Hash describing one worker (host, pid, queues, counters); expires with it."""
    return f"{prefix}:worker:{worker_id}"


def access_probe(prefix: str, kind: str) -> str:
    """A probe key of check_access.lua (`kind`: string, hash, list, zset, set); all
    share one hash tag, and the script deletes them before it returns. The tag
    holds '#', which no queue name may, so no queue's keys can be touched."""
    return f"{prefix}:{{{prefix}:#access}}:{kind}"


def access_channel(prefix: str) -> str:
    """The channel check_access.lua publishes to and the access check subscribes
    to, under the prefix like every channel of the app."""
    return f"{prefix}:{{{prefix}:#access}}:channel"


def event_stream(prefix: str, event: str) -> str:
    """Redis Stream of one event name's entries (docs/events.md gives the entry
    layout). Its hash tag is its own, so streams spread over a cluster; ':' in the
    tag keeps it apart from every queue's tag."""
    return f"{prefix}:{{{prefix}:event:{event}}}:stream"


def events(prefix: str) -> str:
    """Set of event names that have had a subscriber group."""
    return f"{prefix}:events"


def event_group(prefix: str, subscriber: str) -> str:
    """Consumer group name of one subscriber (a background function's dotted
    name) on an event's stream. Groups of other consumers never start so."""
    return f"{prefix}:{subscriber}"


def event_dead(prefix: str, event: str) -> str:
    """Stream of one event's entries no subscriber job could be made for, each
    with the subscriber and the reason (same hash tag as the event's stream)."""
    return f"{prefix}:{{{prefix}:event:{event}}}:dead"


def paused(prefix: str, queue: str) -> str:
    """String "1" while the queue is paused: claim_jobs.lua claims nothing from it."""
    return f"{_tag(prefix, queue)}:paused"


def stats_prefix(prefix: str, queue: str) -> str:
    """Key prefix of the queue's outcome counters; finish_jobs.lua appends
    ``m:<minute>`` or ``h:<hour>`` (epoch minutes or hours)."""
    return f"{_tag(prefix, queue)}:stats:"


def stats_minute(prefix: str, queue: str, minute: int) -> str:
    """Hash of outcome counts recorded in one epoch minute (field per outcome)."""
    return f"{stats_prefix(prefix, queue)}m:{minute}"


def stats_hour(prefix: str, queue: str, hour: int) -> str:
    """Hash of outcome counts recorded in one epoch hour (field per outcome)."""
    return f"{stats_prefix(prefix, queue)}h:{hour}"


def lost_workers(prefix: str) -> str:
    """Sorted set of worker ids whose heartbeat expired, scored by that expiry ms;
    kept for an hour (the admin's "lost workers")."""
    return f"{prefix}:workers:lost"
