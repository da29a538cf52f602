"""connection.ScriptTransport against a private Redis: resends by the retry policy,
error replies, stale connections after a restart, forked children.

Each test builds the transport on a client of its own, with the `retry` policy
under test, and calls a tiny counting script, so a resend that ran the script
twice would show in the count.
"""

import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.backoff import AbstractBackoff, NoBackoff
from redis.exceptions import NoScriptError, ResponseError
from redis.retry import Retry

from django_redisjobs.connection import ScriptTransport
from tests.faults import in_forked_child
from tests.polling import wait_until
from tests.servers import RedisServer

COUNT = "return redis.call('INCR', KEYS[1])"
COUNT_THEN_FAIL = "redis.call('INCR', KEYS[1]) return redis.error_reply('refused')"

MakeServer = Callable[..., RedisServer]


class RecordingBackoff(AbstractBackoff):
    """No wait; remembers the failure count of each backoff it was asked for."""

    def __init__(self) -> None:
        self.failures: list[int] = []

    def compute(self, failures: int) -> float:
        self.failures.append(failures)
        return 0

    def __deepcopy__(self, memo: dict[int, Any]) -> "RecordingBackoff":
        # redis-py copies the client's Retry into its connections; stay one.
        return self


def transport_on(server: RedisServer, retry: Retry) -> tuple[ScriptTransport, str]:
    client = server.client(retry=retry)
    sha = client.script_load(COUNT)
    return ScriptTransport(client.connection_pool), sha


def clients_running(admin: redis.Redis, command: str) -> list[int]:
    return [int(c["id"]) for c in admin.client_list() if c["cmd"] == command]


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start `call` in a thread; the list gets its result or the exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as err:
            out.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def kill_paused_call(admin: redis.Redis, command: str = "evalsha") -> None:
    """Kill the connection of the one call waiting on the pause, then unpause."""
    (client_id,) = wait_until(
        lambda: clients_running(admin, command), what=f"a {command} to wait"
    )
    assert admin.client_kill_filter(_id=client_id) == 1
    admin.client_unpause()


def test_a_call_cut_off_by_client_kill_is_resent_once_and_runs_once(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    transport, sha = transport_on(server, Retry(NoBackoff(), 1))
    with server.client() as admin:
        admin.client_pause(5000, all=False)  # holds the call before it runs
        thread, out = in_thread(lambda: transport.call_script(sha, ["n"], []))
        kill_paused_call(admin)
        thread.join(timeout=10)
        assert out == [1]
        assert admin.get("n") == "1"


def test_without_retries_a_call_cut_off_is_not_resent_and_the_error_surfaces(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    transport, sha = transport_on(server, Retry(NoBackoff(), 0))
    with server.client() as admin:
        admin.client_pause(5000, all=False)
        thread, out = in_thread(lambda: transport.call_script(sha, ["n"], []))
        kill_paused_call(admin)
        thread.join(timeout=10)
        (error,) = out
        assert isinstance(error, redis.ConnectionError)
        assert admin.get("n") is None
        # The connection was dropped, not kept broken: the next call goes through.
        assert transport.call_script(sha, ["n"], []) == 1


def test_the_retry_policy_sets_the_number_of_tries_and_their_backoff(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    backoff = RecordingBackoff()
    transport, sha = transport_on(server, Retry(backoff, 2))
    assert transport.call_script(sha, ["n"], []) == 1  # a connection, kept idle
    server.kill()
    with pytest.raises(redis.ConnectionError):
        transport.call_script(sha, ["n"], [])
    # The first try and two resends, each resend after its backoff.
    assert backoff.failures == [1, 2]


def test_a_stale_idle_connection_after_a_restart_goes_through(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    transport, sha = transport_on(server, Retry(NoBackoff(), 1))
    assert transport.call_script(sha, ["n"], []) == 1
    server.restart()  # persistence off: data and script cache are gone
    with server.client() as admin:
        assert admin.script_load(COUNT) == sha
    assert transport.call_script(sha, ["n"], []) == 1


def test_an_error_reply_is_raised_not_resent_and_the_connection_stays_usable(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    transport, sha = transport_on(server, Retry(NoBackoff(), 3))
    with server.client() as admin:
        failing = admin.script_load(COUNT_THEN_FAIL)
        with pytest.raises(ResponseError, match="refused"):
            transport.call_script(failing, ["n"], [])
        with pytest.raises(NoScriptError):
            transport.call_script("0" * 40, ["n"], [])
        assert admin.get("n") == "1"
        assert transport.call_script(sha, ["n"], []) == 2
        assert len(admin.client_list()) == 2  # the admin and one kept connection


def test_call_after_returns_both_replies_with_an_error_reply_as_a_value(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    transport, _sha = transport_on(server, Retry(NoBackoff(), 1))
    first, second = transport.call_after(("SET", "k", "v"), "0" * 40, ["n"], [])
    assert first == "OK"
    assert isinstance(second, NoScriptError)


def test_call_after_sends_both_commands_again_after_a_kill_during_the_wait(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    transport, sha = transport_on(server, Retry(NoBackoff(), 1))
    with server.client() as admin:
        wait = ("BZPOPMIN", "marker", 10)
        thread, out = in_thread(lambda: transport.call_after(wait, sha, ["n"], []))
        (client_id,) = wait_until(
            lambda: clients_running(admin, "bzpopmin"), what="the wait to block"
        )
        assert admin.client_kill_filter(_id=client_id) == 1
        admin.zadd("marker", {"ready": 0})
        thread.join(timeout=15)
        ((popped, counted),) = out
        assert popped[:2] == ["marker", "ready"]
        assert counted == 1
        assert admin.get("n") == "1"


def test_a_forked_child_calls_on_a_connection_of_its_own(
    make_redis_server: MakeServer,
) -> None:
    server = make_redis_server()
    transport, sha = transport_on(server, Retry(NoBackoff(), 1))
    transport.call_script(sha, ["n"], [])  # the parent's connection, kept idle

    def in_child() -> str:
        transport.call_script(sha, ["n"], [])
        with server.client() as admin:
            return str(len(clients_running(admin, "evalsha")))

    out = in_forked_child(in_child)

    # Sharing the parent's socket would leave one client behind both calls.
    assert out == "2"
    assert transport.call_script(sha, ["n"], []) == 3
