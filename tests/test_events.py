"""Events on Redis Streams: publish, fan-out to one job per subscriber, and a relay
killed with SIGKILL mid-way, all on the suite's real Redis."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from django_redisjobs import InvalidJob, JobHandle, SerializationError, keys
from django_redisjobs.event_relay import EventRelay
from django_redisjobs.events import job_id_for, publish, subscribe, subscriptions
from tests import event_jobs
from tests.conftest import RedisJobs
from tests.polling import wait_until

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SIGNUP = [s for s in subscriptions() if s.event == "user.registered"]
SUBSCRIBERS = {
    "tests.event_jobs.send_welcome": "default",
    "tests.event_jobs.update_analytics": "other",
    "tests.event_jobs.notify_billing": "other",
}


@pytest.fixture
def events_on(redisjobs: RedisJobs) -> Iterator[RedisJobs]:
    values = {**redisjobs.settings, "LEASE_S": 1}
    with override_settings(REDISJOBS=values):
        event_jobs.runs.clear()
        yield RedisJobs(redisjobs.server, redisjobs.prefix, values)


def stream(rj: RedisJobs, event: str) -> list[tuple[str, dict[str, str]]]:
    return rj.client.xrange(keys.event_stream(rj.prefix, event))  # type: ignore[return-value]


def ready(rj: RedisJobs, queue: str) -> list[str]:
    return rj.client.lrange(keys.ready(rj.prefix, queue), 0, -1)  # type: ignore[return-value]


def test_publish_appends_the_documented_entry_and_returns_its_id(
    events_on: RedisJobs,
) -> None:
    event_id = publish("user.registered", {"user_id": 42})

    ((_, fields),) = stream(events_on, "user.registered")
    assert len(event_id) == 32 and fields["id"] == event_id
    assert fields["event"] == "user.registered"
    assert json.loads(fields["payload"]) == {"user_id": 42}
    assert int(fields["published_ms"]) > 0


def test_bad_payloads_and_names_are_refused_and_nothing_is_written(
    events_on: RedisJobs,
) -> None:
    with pytest.raises(SerializationError, match="payload"):
        publish("user.registered", {"at": object()})
    with pytest.raises(SerializationError):
        publish("user.registered", "bad \udcff")
    with pytest.raises(InvalidJob, match="Event name"):
        publish("user registered", {})
    with pytest.raises(InvalidJob, match="start="):
        subscribe("x", start="beginning")
    with pytest.raises(TypeError, match="above @background"):
        subscribe("x")(print)  # type: ignore[type-var]
    assert stream(events_on, "user.registered") == []


@pytest.mark.django_db(transaction=True)
def test_publish_in_a_transaction_waits_for_the_commit(events_on: RedisJobs) -> None:
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        publish("user.registered", {"user_id": 1})
        1 / 0  # noqa: B018
    with transaction.atomic():
        kept = publish("user.registered", {"user_id": 2})
        assert stream(events_on, "user.registered") == []

    assert [f["id"] for _, f in stream(events_on, "user.registered")] == [kept]


def test_each_subscriber_gets_one_job_per_event_on_its_queue(
    events_on: RedisJobs,
) -> None:
    relay = EventRelay(SIGNUP, "relay-1")
    relay.prepare()  # groups start at "$": create them before publishing
    ids = [publish("user.registered", {"user_id": n}) for n in range(300)]

    assert relay.drain() == 900
    assert relay.drain() == 0  # acknowledged: nothing comes back
    assert len(ready(events_on, "default")) == 300
    assert len(ready(events_on, "other")) == 600
    for subscriber in SUBSCRIBERS:
        expected = {job_id_for(event_id, subscriber) for event_id in ids}
        queue = SUBSCRIBERS[subscriber]
        assert expected <= set(ready(events_on, queue))

    events_on.run_worker(queues=("default", "other"), concurrency=4)
    handle = JobHandle.load(job_id_for(ids[7], "tests.event_jobs.send_welcome"))
    assert handle.result == 7
    per_subscriber = {name for name, _ in event_jobs.runs}
    assert per_subscriber == {"send_welcome", "update_analytics", "notify_billing"}
    assert sum(event_jobs.runs.values()) == 900
    assert set(event_jobs.runs.values()) == {1}


def test_a_relay_that_enqueued_but_did_not_acknowledge_stores_nothing_twice(
    events_on: RedisJobs,
) -> None:
    relay = EventRelay(SIGNUP, "crashing")
    relay.prepare()
    for n in range(50):
        publish("user.registered", {"user_id": n})
    store = events_on.store
    # What a relay killed between its enqueue and its XACK leaves behind:
    sub = SIGNUP[0]
    entries = store.read_group(sub.event, sub.subscriber, "crashing", 100, None)
    requests = [
        sub.function.request_with_id(
            job_id_for(e.fields["id"], sub.subscriber),
            [json.loads(e.fields["payload"])],
        )
        for e in entries
    ]
    assert store.enqueue(requests, 0) == [True] * 50

    time.sleep(1.1)  # a lease: the entries are idle long enough to take over
    survivor = EventRelay(SIGNUP, "survivor")
    assert survivor.drain() == 150
    assert survivor.enqueued == 100  # the 50 already stored were not stored again
    assert len(ready(events_on, "default")) == 50


def test_a_late_subscriber_starting_from_all_catches_up(events_on: RedisJobs) -> None:
    published = [publish("invoice.sent", n) for n in range(20)]
    invoices = [s for s in subscriptions() if s.event == "invoice.sent"]

    relay = EventRelay(invoices, "relay")
    assert relay.drain() == 20  # archive_invoice (start="all") only
    queued = set(ready(events_on, "default"))
    assert {
        job_id_for(i, "tests.event_jobs.archive_invoice") for i in published
    } == queued

    later = publish("invoice.sent", 99)
    assert relay.drain() == 2  # both subscribers see what comes after
    assert job_id_for(later, "tests.event_jobs.count_invoice") in ready(
        events_on, "default"
    )


def test_an_event_nobody_subscribes_to_stays_in_its_stream_and_costs_no_job(
    events_on: RedisJobs,
) -> None:
    publish("nobody.listens", {"x": 1})
    EventRelay(subscriptions(), "relay").drain()

    assert len(stream(events_on, "nobody.listens")) == 1
    assert events_on.store.counts("default")["queued"] == 0


def test_a_removed_subscribers_events_go_to_the_dead_stream_with_the_reason(
    events_on: RedisJobs,
) -> None:
    store = events_on.store
    store.ensure_group("user.registered", "tests.event_jobs.gone", "$")
    for n in range(3):
        publish("user.registered", {"user_id": n})

    relay = EventRelay(SIGNUP, "relay")
    assert relay.sweep_orphans() == 3
    dead = events_on.client.xrange(keys.event_dead(events_on.prefix, "user.registered"))
    assert len(dead) == 3
    fields = dead[0][1]
    assert fields["subscriber"] == "tests.event_jobs.gone"  # type: ignore[index]
    assert "function or its @subscribe was removed" in fields["reason"]  # type: ignore[index]
    assert relay.sweep_orphans() == 0  # acknowledged, not retried for ever
    group = next(
        g
        for g in store.event_groups()["user.registered"]
        if g["name"].endswith(".gone")
    )
    assert group["pending"] == 0


def test_an_entry_written_by_hand_goes_to_the_dead_stream(events_on: RedisJobs) -> None:
    relay = EventRelay(SIGNUP[:1], "relay")
    relay.prepare()
    events_on.client.xadd(
        keys.event_stream(events_on.prefix, "user.registered"), {"payload": "{"}
    )
    assert relay.drain() == 1
    assert relay.dead == 1 and relay.enqueued == 0


def test_every_subscriber_gets_exactly_one_job_per_event_when_a_relay_is_killed(
    events_on: RedisJobs, tmp_path: Path
) -> None:
    """A `runworker` whose relay threads run while 10,000 events are published
    is killed with SIGKILL mid-way; a second relay takes over the entries it
    left pending after a lease. Each subscriber has exactly 10,000 jobs."""
    total = 10_000
    EventRelay(SIGNUP, "setup").prepare()
    settings: dict[str, Any] = {
        **events_on.settings,
        "AUTODISCOVER_MODULES": ["tasks", "event_jobs"],
    }
    with open(tmp_path / "worker.err", "wb") as err:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "runworker", "--queues", "unused"],
            cwd=PROJECT_ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "REDISJOBS_TEST_SETTINGS": json.dumps(settings),
            },
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        for n in range(total):
            publish("user.registered", {"user_id": n})
            if n == total // 2:
                wait_until(
                    lambda: len(ready(events_on, "other")) > 1000,
                    what="the worker's relay to get going",
                )
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    relayed_before = len(ready(events_on, "default")) + len(ready(events_on, "other"))
    assert 0 < relayed_before < 3 * total, (tmp_path / "worker.err").read_text()[-2000:]

    time.sleep(1.1)  # one lease: what the killed relay left pending is idle enough
    EventRelay(SIGNUP, "survivor").drain()

    assert len(ready(events_on, "default")) == total
    assert len(set(ready(events_on, "other"))) == len(ready(events_on, "other"))
    assert len(ready(events_on, "other")) == 2 * total
    for group in events_on.store.event_groups()["user.registered"]:
        assert (group["pending"], group["lag"]) == (0, 0), group
