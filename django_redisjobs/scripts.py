"""Loads the Lua scripts in `lua/` and wraps each in a typed method.

Scripts are registered once per client (EVALSHA, falling back to loading the
script when the server lost its script cache, e.g. after a restart), and their
calls go through a `Transport`, `connection.ScriptTransport` (raw protocol on
kept connections, resent per the client's retry policy). Wrappers convert the
flat replies into Python values; key names are built by the caller from `keys`.
"""

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, ResponseError

logger = logging.getLogger(__name__)

SCRIPT_NAMES = (
    "enqueue_jobs",
    "claim_jobs",
    "finish_jobs",
    "promote_due",
    "recover_jobs",
    "cancel_job",
    "claim_cron_slot",
    "forget_cron_entries",
    "check_access",
    "retry_jobs",
    "delete_jobs",
    "drop_ready",
    "set_progress",
)


PRELUDE = "_prelude"


def load_file(name: str) -> str:
    """Return the text of `lua/<name>.lua` shipped in the package."""
    return (resources.files(__package__) / "lua" / f"{name}.lua").read_text("utf-8")


@cache
def load_source(name: str) -> str:
    """Return the text Redis runs for script `name`: the prelude's helpers, then
    the script's file. Static text, so its SHA is the same in every process."""
    return load_file(PRELUDE) + load_file(name)


@cache
def prelude_lines() -> int:
    """How many lines of a script's text come before its file's first line."""
    return load_file(PRELUDE).count("\n")


_SCRIPT_LINE = re.compile(r"@user_script:(\d+)")


def located(err: ResponseError, name: str) -> ResponseError:
    """Add the file and line of a script error to its message, in place.

    Redis gives the line in the text it ran, which starts with the prelude.
    """
    match = _SCRIPT_LINE.search(str(err))
    if match is not None and err.args:
        line = int(match[1]) - prelude_lines()
        where = (
            f"{name}.lua line {line}" if line > 0 else f"{PRELUDE}.lua line {match[1]}"
        )
        err.args = (f"{err.args[0]} ({where})", *err.args[1:])
    return err


@dataclass(frozen=True, slots=True)
class Claimed:
    """An id taken off a queue by `claim_jobs`; no `fields` if its hash was gone
    (or its key held another type)."""

    job_id: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class Recovered:
    requeued: int
    dead: int
    job_ids: list[str]


@dataclass(frozen=True, slots=True)
class CronClaim:
    """What `claim_cron_slot` did: the watermark it found (None for a new entry)
    and the ids of the jobs it stored."""

    watermark_ms: int | None
    job_ids: list[str]


class Transport(Protocol):
    """How `Scripts` sends its calls: `connection.ScriptTransport`."""

    def call_script(
        self, sha: str, keys: Sequence[str], args: Sequence[Any]
    ) -> Any: ...

    def call_after(
        self, command: Sequence[Any], sha: str, keys: Sequence[str], args: Sequence[Any]
    ) -> tuple[Any, Any]: ...


class Scripts:
    """The registered scripts of one redis client.

    Each wrapper runs its script and converts the reply. `queue_in` adds a call to
    a pipeline instead, `execute` runs that pipeline, and the caller converts each
    reply with the matching `parse_*`.
    """

    def __init__(self, client: redis.Redis, transport: Transport) -> None:
        self._transport = transport
        self._scripts: dict[str, Script] = {
            name: client.register_script(load_source(name)) for name in SCRIPT_NAMES
        }
        self._by_sha = {script.sha: script for script in self._scripts.values()}
        self._names = {script.sha: name for name, script in self._scripts.items()}

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        try:
            try:
                return self._transport.call_script(script.sha, keys, args)
            except NoScriptError:
                # The server lost its script cache; redis-py's call loads it again.
                return script(keys=keys, args=args)
        except ResponseError as err:
            located(err, name)
            raise

    def run_after(
        self,
        command: Sequence[Any],
        name: str,
        keys: Sequence[str],
        args: Sequence[Any],
    ) -> tuple[Any, Any]:
        """Send `command` and a call of script `name` in one write on one
        connection and return both replies; Redis runs them back to back.

        For a blocking command (an idle worker's wait), the script runs the moment
        the wait returns, and the client spends no more time than one script call
        between its claim and the next wait. An error reply to either is raised.
        """
        script = self._scripts[name]
        first, second = self._transport.call_after(command, script.sha, keys, args)
        if isinstance(first, ResponseError):
            raise first
        try:
            if isinstance(second, NoScriptError):
                second = script(keys=keys, args=args)
            if isinstance(second, ResponseError):
                raise second
        except ResponseError as err:
            located(err, name)
            raise
        return first, second

    def queue_in(
        self,
        pipe: redis.client.Pipeline,
        name: str,
        keys: Sequence[str],
        args: Sequence[Any],
    ) -> None:
        """Add a call of script `name` to `pipe`; run the pipeline with `execute`."""
        pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)

    def execute(self, pipe: redis.client.Pipeline) -> list[Any]:
        """Run `pipe` in one round trip and return its replies.

        redis-py checks the scripts of a pipeline with SCRIPT EXISTS before each
        execute, a second round trip every time. Here the server's NOSCRIPT reply
        is the check instead: a call refused with it did nothing, so it is run
        again on its own, which loads the script (after a restart or SCRIPT
        FLUSH). Any other error reply is raised.
        """
        calls = [args for args, _options in pipe.command_stack]
        replies: list[Any] = pipe.execute(raise_on_error=False)
        for index, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                _command, sha, numkeys, *rest = calls[index]
                replies[index] = self._by_sha[sha](
                    keys=rest[:numkeys], args=rest[numkeys:]
                )
            elif isinstance(reply, ResponseError) and calls[index][0] == "EVALSHA":
                raise located(reply, self._names[calls[index][1]])
            elif isinstance(reply, Exception):
                raise reply
        return replies

    def enqueue_jobs(self, keys: Sequence[str], args: Sequence[Any]) -> list[int | str]:
        """Store jobs; per job 1 (stored, queued), 2 (stored, scheduled), 0 (id
        already known) or the id of the job that holds its unique key."""
        return parse_enqueued(self._run("enqueue_jobs", keys, args))

    def claim_jobs(self, keys: Sequence[str], args: Sequence[Any]) -> list[Claimed]:
        """Claim ready jobs; their fields as stored after the claim."""
        return parse_claimed(self._run("claim_jobs", keys, args))

    def finish_jobs(self, keys: Sequence[str], args: Sequence[Any]) -> list[int]:
        """Record outcomes; per job 1 recorded, 0 no longer held, -1 hash gone."""
        return parse_codes(self._run("finish_jobs", keys, args))

    def promote_due(self, keys: Sequence[str], args: Sequence[Any]) -> tuple[int, int]:
        """Make due jobs ready; (moved, next due ms or -1). Ids set aside as
        damaged are logged."""
        moved, next_due, *set_aside = self._run("promote_due", keys, args)
        _log_set_aside_pairs("promote_due", set_aside)
        return int(moved), int(next_due)

    def cancel_job(self, keys: Sequence[str], args: Sequence[Any]) -> int:
        """Cancel one job; 1 cancelled, 2 cancel requested, 0 ended, -1 missing."""
        return int(self._run("cancel_job", keys, args))

    def recover_jobs(self, keys: Sequence[str], args: Sequence[Any]) -> Recovered:
        """Take back jobs of a gone worker; counts and the ids. Ids set aside as
        damaged are logged."""
        requeued, dead, count, *rest = self._run("recover_jobs", keys, args)
        _log_set_aside_pairs("recover_jobs", rest[count:])
        return Recovered(int(requeued), int(dead), [str(i) for i in rest[:count]])

    def claim_cron_slot(self, keys: Sequence[str], args: Sequence[Any]) -> CronClaim:
        """Claim fire times of one cron entry; the old watermark and stored ids."""
        return parse_cron_claim(self._run("claim_cron_slot", keys, args))

    def forget_cron_entries(self, keys: Sequence[str], args: Sequence[Any]) -> int:
        """Delete the state of entries not seen since a cutoff; how many."""
        return int(self._run("forget_cron_entries", keys, args))

    def check_access(self, keys: Sequence[str], args: Sequence[Any]) -> list[str]:
        """Try every command scripts and plain calls send; per refused command,
        "NAME: reason"."""
        reply = self._run("check_access", keys, args)
        return [
            f"{name}: {reason}"
            for name, reason in zip(reply[::2], reply[1::2], strict=True)
        ]

    def retry_jobs(self, keys: Sequence[str], args: Sequence[Any]) -> list[int]:
        """Retry ended jobs; per job 1 retried, 0 not retryable now, -1 missing."""
        return parse_codes(self._run("retry_jobs", keys, args))

    def delete_jobs(self, keys: Sequence[str], args: Sequence[Any]) -> list[int]:
        """Delete ended jobs; per job 1 deleted, 0 not ended, -1 missing."""
        return parse_codes(self._run("delete_jobs", keys, args))

    def drop_ready(self, keys: Sequence[str], args: Sequence[Any]) -> tuple[int, int]:
        """Delete ready jobs from the head; (ids taken off, hashes deleted)."""
        taken, deleted = self._run("drop_ready", keys, args)
        return int(taken), int(deleted)

    def set_progress(self, keys: Sequence[str], args: Sequence[Any]) -> bool:
        """Store progress while the attempt holds the lease; False when not."""
        return int(self._run("set_progress", keys, args)) == 1


def parse_cron_claim(reply: Sequence[Any]) -> CronClaim:
    """Split claim_cron_slot's reply: the old watermark (-1: new), then job ids."""
    watermark = int(reply[0])
    return CronClaim(watermark if watermark >= 0 else None, [str(i) for i in reply[1:]])


def parse_codes(reply: Sequence[Any]) -> list[int]:
    """A reply of one integer per job."""
    return [int(code) for code in reply]


def parse_enqueued(reply: Sequence[Any]) -> list[int | str]:
    """A reply of enqueue_jobs: an integer code, or a holder's id (a string), per
    job."""
    return [code if isinstance(code, str) else int(code) for code in reply]


def parse_claimed(reply: Sequence[Any]) -> list[Claimed]:
    """Split claim_jobs' flat reply: id, N, then N alternating names and values.

    An id whose key is not a hash (N = -1, then the reason) is logged and comes
    back like an id without a hash: `Claimed(job_id, {})`.
    """
    claimed: list[Claimed] = []
    pos = 0
    while pos < len(reply):
        job_id, count = str(reply[pos]), int(reply[pos + 1])
        if count < 0:
            _log_set_aside("claim_jobs", job_id, reply[pos + 2])
            claimed.append(Claimed(job_id, {}))
            pos += 3
            continue
        flat = reply[pos + 2 : pos + 2 + count]
        claimed.append(Claimed(job_id, dict(zip(flat[::2], flat[1::2], strict=True))))
        pos += 2 + count
    return claimed


def _log_set_aside_pairs(script: str, pairs: Sequence[Any]) -> None:
    for job_id, reason in zip(pairs[::2], pairs[1::2], strict=True):
        _log_set_aside(script, str(job_id), str(reason))


def _log_set_aside(script: str, job_id: str, reason: str) -> None:
    logger.warning(
        "set aside a damaged job id script=%s job id=%s reason=%s",
        script,
        job_id,
        reason,
    )
