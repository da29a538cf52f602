"""The console's pages through Django's test client, against jobs made through
the public API on the suite's real Redis (issue 12)."""

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.test import Client, override_settings

from django_redisjobs import JobStatus, keys
from django_redisjobs.queue import WorkerInfo
from tests import jobs
from tests.admin_helpers import client_for, console_url
from tests.conftest import RedisJobs
from tests.servers import RedisServer

pytestmark = pytest.mark.django_db

Q = "default"


@pytest.fixture(autouse=True)
def _enqueue_at_once(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test runs in a transaction that never commits: enqueue right away."""
    if "redisjobs" not in request.fixturenames:
        yield
        return
    redisjobs = request.getfixturevalue("redisjobs")
    with override_settings(REDISJOBS={**redisjobs.settings, "ON_COMMIT": False}):
        yield


@pytest.fixture
def staff(redisjobs: RedisJobs) -> Client:
    return client_for("view")


def test_the_admin_index_links_to_the_console(admin_client: Client) -> None:
    page = admin_client.get("/admin/").content.decode()
    assert "Redis jobs" in page
    assert console_url("changelist") in page


def test_overview_shows_counts_paused_workers_chart_and_redis_panel(
    staff: Client, redisjobs: RedisJobs
) -> None:
    jobs.add.delay(1, 2)
    jobs.always_fails.using(max_attempts=1).delay("x")
    jobs.asks_for_retry.delay(600)  # retrying for ten minutes
    redisjobs.run_worker()
    jobs.add.delay(3, 4)
    jobs.add.enqueue((5, 6), delay=timedelta(hours=1))
    redisjobs.store.pause(Q)
    redisjobs.store.heartbeat(_info(), 9_999_999_999_999, {})
    response = staff.get(console_url("changelist"))
    assert response.status_code == 200
    page = response.content.decode()
    queue_row = page.split('data-queue="default"', 1)[1].split("</tr>", 1)[0]
    counts = re.findall(r'data-count="(\w+)">(\d+)<', queue_row)
    assert dict(counts) == {
        "queued": "1", "scheduled": "1", "retrying": "1", "active": "0",
        "succeeded": "1", "dead": "1", "cancelled": "0",
    }  # fmt: skip
    assert "paused" in queue_row
    assert "<svg" in page and "1 succeeded" in page and "2 failed" in page
    assert "host-1" in page  # the worker
    assert "AOF off" in page
    assert "append-only persistence (AOF) off" in page  # the warning, in words


def _info() -> WorkerInfo:
    return WorkerInfo("w-1", "host-1", 42, (Q,), 3, 1_700_000_000_000)


def test_job_list_per_state_is_paginated_newest_first(
    staff: Client, redisjobs: RedisJobs
) -> None:
    handles = [jobs.add.delay(i, i) for i in range(55)]
    redisjobs.run_worker(concurrency=4)
    first = staff.get(console_url("jobs", Q, "succeeded")).content.decode()
    assert "page 1 of 2 (55 jobs)" in first
    ids = re.findall(r'name="ids" value="(\w+)"', first)
    assert len(ids) == 50
    second = staff.get(console_url("jobs", Q, "succeeded") + "?page=2")
    assert len(re.findall(r'name="ids" value="(\w+)"', second.content.decode())) == 5
    assert set(ids) <= {h.id for h in handles}


def test_job_list_filters_by_function_and_says_how_far_it_looked(
    staff: Client, redisjobs: RedisJobs
) -> None:
    jobs.add.delay(1, 1)
    jobs.echo.using(queue=Q).delay("x")
    page = staff.get(console_url("jobs", Q, "queued") + "?func=echo").content.decode()
    assert page.count('name="ids"') == 1
    assert "looked at the first 2 queued job ids" in page
    assert "tests.jobs.echo" in page and "tests.jobs.add" not in page


def test_job_list_of_an_unknown_state_is_404(
    staff: Client, redisjobs: RedisJobs
) -> None:
    assert staff.get(console_url("jobs", Q, "nonsense")).status_code == 404


def test_job_detail_shows_fields_error_traceback_and_history(
    staff: Client, redisjobs: RedisJobs
) -> None:
    handle = jobs.always_fails.using(max_attempts=2).delay("kaput")
    redisjobs.run_worker()
    handle.refresh()
    assert handle.status is JobStatus.DEAD
    page = staff.get(console_url("job", Q, handle.id)).content.decode()
    assert "builtins.ConnectionError" in page
    assert "Traceback (most recent call last)" in page
    history = page.split('id="history"', 1)[1].split("</table>", 1)[0]
    assert history.count("<tr>") == 3  # header and two attempts
    assert "retrying" in history and "dead" in history
    assert "&quot;kaput&quot;" in page  # args, escaped JSON
    assert "max_attempts" in page  # every field as stored
    assert f"?func={handle.job.func}" in page  # the same function's other jobs


def test_job_detail_shows_progress_and_its_message(
    staff: Client, redisjobs: RedisJobs
) -> None:
    handle = jobs.add.delay(1, 1)
    (claimed,) = redisjobs.store.claim(Q, "w1", 1, 1, 60_000)
    redisjobs.store.set_progress(handle.id, Q, ("w1", 1), 0.4, "two of five")
    page = staff.get(console_url("job", Q, handle.id)).content.decode()
    assert 'value="40" data-progress' in page
    assert "two of five" in page
    assert "Ask it to stop" not in page  # view permission only: no actions


def test_nothing_a_job_stored_runs_in_the_browser(
    admin_client: Client, redisjobs: RedisJobs
) -> None:
    script = "<script>alert('x')</script>"
    ok = jobs.echo.using(queue=Q).delay(script)
    bad = jobs.always_fails.using(max_attempts=1).delay(script)
    redisjobs.run_worker()
    for handle in (ok, bad):
        page = admin_client.get(console_url("job", Q, handle.id)).content.decode()
        assert script not in page
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    listing = admin_client.get(console_url("jobs", Q, "dead")).content.decode()
    assert script not in listing


def test_a_missing_job_is_a_404_page(staff: Client, redisjobs: RedisJobs) -> None:
    assert staff.get(console_url("job", Q, "0" * 32)).status_code == 404
    assert staff.get(console_url("job", Q, "bad{id}")).status_code == 404


def test_a_damaged_hash_is_shown_as_stored(staff: Client, redisjobs: RedisJobs) -> None:
    redisjobs.client.hset(keys.job(redisjobs.prefix, Q, "d" * 32), "id", "d" * 32)
    page = staff.get(console_url("job", Q, "d" * 32)).content.decode()
    assert "cannot be read as a job" in page


def test_find_by_id_in_any_queue(staff: Client, redisjobs: RedisJobs) -> None:
    handle = jobs.echo.delay("hi")  # queue "other"
    found = staff.get(console_url("find") + f"?job_id={handle.id}")
    assert found.status_code == 302
    assert found["Location"] == console_url("job", "other", handle.id)
    assert staff.get(console_url("find") + "?job_id=" + "0" * 32).status_code == 404


def test_workers_page_lists_held_jobs_with_lease_deadlines(
    staff: Client, redisjobs: RedisJobs
) -> None:
    handle = jobs.add.delay(1, 1)
    redisjobs.store.heartbeat(_info(), 9_999_999_999_999, {"held": 1})
    redisjobs.store.claim(Q, "w-1", 1, 1_700_000_000_000, 60_000)
    page = staff.get(console_url("workers")).content.decode()
    assert 'id="worker-w-1"' in page
    assert handle.id in page
    assert "2023-11-14 22:14:20" in page  # the lease deadline


def test_cron_page_shows_words_next_fires_and_last_outcome(
    staff: Client, redisjobs: RedisJobs
) -> None:
    cron = [{"name": "nightly", "function": "tests.jobs.add",
             "schedule": "0 3 * * *", "args": [1, 2],
             "timezone": "Europe/Berlin"}]  # fmt: skip
    with override_settings(REDISJOBS={**redisjobs.settings, "CRON": cron}):
        page = staff.get(console_url("cron")).content.decode()
    assert "every day at 03:00, Europe/Berlin" in page
    assert page.count("03:00 CE") == 5  # the next five fire times, local
    assert "never" in page


def test_json_endpoints_give_counts_and_job_progress(
    staff: Client, redisjobs: RedisJobs
) -> None:
    handle = jobs.add.delay(1, 1)
    data = staff.get(console_url("live_overview")).json()
    assert data["queues"][0]["counts"]["queued"] == 1
    job = staff.get(console_url("live_job", Q, handle.id)).json()
    assert job == {"status": "queued", "finished": False, "attempts": 0,
                   "progress": 0.0, "percent": 0, "progress_message": ""}  # fmt: skip
    assert staff.get(console_url("live_job", Q, "0" * 32)).status_code == 404


def test_redis_down_gives_a_page_that_says_so(
    db: None, make_redis_server: Callable[..., RedisServer]
) -> None:
    server = make_redis_server()
    url = server.url
    server.stop()
    client = client_for("view")
    with override_settings(REDISJOBS={"REDIS_URL": url}):
        response = client.get(console_url("changelist"))
    assert response.status_code == 503
    assert "Redis cannot be reached" in response.content.decode()


PAGES = [
    ("changelist", ()),
    ("jobs", (Q, "queued")),
    ("job", (Q, "0" * 32)),
    ("find", ()),
    ("workers", ()),
    ("cron", ()),
    ("live_overview", ()),
    ("live_job", (Q, "0" * 32)),
]


@pytest.mark.parametrize(("name", "args"), PAGES)
def test_every_page_sends_non_staff_to_the_login_and_refuses_staff_without_view(
    redisjobs: RedisJobs, name: str, args: tuple[str, ...]
) -> None:
    target = console_url(name, *args)
    anonymous = Client().get(target)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    not_staff = client_for("view", staff=False).get(target)
    assert not_staff.status_code == 302 and "/admin/login/" in not_staff["Location"]
    assert client_for().get(target).status_code == 403
    assert client_for("view").get(target).status_code in (200, 302, 404)
