"""The console's view of events: streams and groups on the overview, an event's
newest entries with links to the jobs they made (issue 16), escaped."""

import pytest
from django.test import Client

from django_redisjobs import keys
from django_redisjobs.event_relay import EventRelay
from django_redisjobs.events import job_id_for, publish, subscriptions
from tests import event_jobs  # noqa: F401 - registers the subscribers
from tests.admin_helpers import client_for, console_url
from tests.conftest import RedisJobs

# Database tests run in a transaction that never commits: events are published
# with on_commit=False.
pytestmark = pytest.mark.django_db
SIGNUP = [s for s in subscriptions() if s.event == "user.registered"]


@pytest.fixture
def staff(redisjobs: RedisJobs) -> Client:
    return client_for("view")


def test_overview_lists_each_stream_with_its_groups_lag_and_pending(
    redisjobs: RedisJobs, staff: Client
) -> None:
    relay = EventRelay(SIGNUP, "relay")
    relay.prepare()
    for n in range(3):
        publish("user.registered", {"user_id": n}, on_commit=False)
    # One subscriber's relay read two entries and died before acknowledging.
    sub = SIGNUP[0]
    redisjobs.store.read_group(sub.event, sub.subscriber, "gone", 2, None)

    page = staff.get(console_url("changelist")).content.decode()

    assert 'data-event="user.registered"' in page
    assert console_url("event", "user.registered") in page
    assert f"{sub.subscriber}: 1 / 2" in page  # 1 not read yet, 2 pending
    assert f"{SIGNUP[1].subscriber}: 3 / 0" in page


def test_event_page_links_each_entry_to_every_subscribers_job(
    redisjobs: RedisJobs, staff: Client
) -> None:
    relay = EventRelay(SIGNUP, "relay")
    relay.prepare()
    event_id = publish(
        "user.registered", {"user_id": 7, "name": "<script>x</script>"}, on_commit=False
    )
    relay.drain()

    page = staff.get(console_url("event", "user.registered")).content.decode()

    assert event_id in page
    for sub in SIGNUP:
        job_id = job_id_for(event_id, sub.subscriber)
        link = f"{console_url('find')}?job_id={job_id}"
        assert link in page
        found = staff.get(link)
        assert found.status_code == 302 and job_id in found["Location"]
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_an_entry_that_is_not_json_is_shown_escaped(
    redisjobs: RedisJobs, staff: Client
) -> None:
    EventRelay(SIGNUP[:1], "relay").prepare()
    stream = keys.event_stream(redisjobs.prefix, "user.registered")
    redisjobs.client.xadd(stream, {"payload": "<b>{", "id": "x" * 32})

    page = staff.get(console_url("event", "user.registered")).content.decode()

    assert "&lt;b&gt;{" in page and "<b>{" not in page


def test_unknown_or_bad_event_names_are_404(
    redisjobs: RedisJobs, staff: Client
) -> None:
    assert staff.get(console_url("event", "never.published")).status_code == 404
    assert staff.get(console_url("event", "bad name")).status_code == 404


def test_event_page_needs_the_view_permission(redisjobs: RedisJobs) -> None:
    target = console_url("event", "user.registered")
    anonymous = Client().get(target)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    assert client_for().get(target).status_code == 403
