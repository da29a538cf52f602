"""The console's actions through Django's test client: confirmation first, then
the store method, a message, and permissions for each (issue 12)."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client, override_settings

from django_redisjobs import JobDoesNotExist, JobStatus
from django_redisjobs.queue import JobState
from tests import jobs
from tests.admin_helpers import client_for, console_url
from tests.conftest import RedisJobs

pytestmark = pytest.mark.django_db

Q = "default"


@pytest.fixture(autouse=True)
def _enqueue_at_once(redisjobs: RedisJobs) -> Iterator[None]:
    """Each test runs in a transaction that never commits: enqueue right away."""
    with override_settings(REDISJOBS={**redisjobs.settings, "ON_COMMIT": False}):
        yield


def act(client: Client, name: str, confirm: bool = True, **data: Any) -> Any:
    if confirm:
        data["confirm"] = "yes"
    return client.post(console_url("action", name), data)


def said(response: Any) -> str:
    """The message this action added (earlier ones were never shown, so they
    are still stored too)."""
    return [str(m) for m in get_messages(response.wsgi_request)][-1]


def dead(redisjobs: RedisJobs, count: int = 1) -> list[Any]:
    handles = [jobs.always_fails.using(max_attempts=1).delay("x") for _ in range(count)]
    redisjobs.run_worker()
    return handles


def test_an_action_asks_first_and_changes_nothing_until_confirmed(
    admin_client: Client, redisjobs: RedisJobs
) -> None:
    (handle,) = dead(redisjobs)
    page = act(admin_client, "retry", confirm=False, queue=Q, ids=[handle.id])
    assert page.status_code == 200
    text = page.content.decode()
    assert "queued again under the same id" in text
    assert 'name="confirm" value="yes"' in text and "csrfmiddlewaretoken" in text
    assert handle.refresh().status is JobStatus.DEAD


def test_actions_refuse_get(admin_client: Client, redisjobs: RedisJobs) -> None:
    assert admin_client.get(console_url("action", "retry")).status_code == 405


def test_actions_need_a_csrf_token(redisjobs: RedisJobs) -> None:
    client = client_for("view", "change")
    client.handler.enforce_csrf_checks = True  # type: ignore[attr-defined]
    response = act(client, "pause", queue=Q)
    assert response.status_code == 403
    assert not redisjobs.store.paused_queues([Q])


def test_bulk_retry_says_what_happened(
    admin_client: Client, redisjobs: RedisJobs
) -> None:
    first, second = dead(redisjobs, 2)
    waiting = jobs.add.delay(1, 1)
    back = console_url("jobs", Q, "dead")
    response = act(
        admin_client, "retry", queue=Q, ids=[first.id, second.id, waiting.id], next=back
    )
    assert response.status_code == 302 and response["Location"] == back
    assert (
        said(response)
        == "2 jobs retried; 1 was not dead, cancelled or retrying any more."
    )
    assert first.refresh().status is JobStatus.QUEUED
    assert first.attempts == 0 and len(first.history) == 1


def test_retry_every_dead_job_of_a_queue(
    admin_client: Client, redisjobs: RedisJobs
) -> None:
    dead(redisjobs, 3)
    response = act(admin_client, "retry_dead", queue=Q)
    assert said(response) == "3 dead jobs retried."
    assert redisjobs.store.counts(Q)[JobState.QUEUED] == 3


def test_cancel_waiting_and_ask_a_running_job_to_stop(
    admin_client: Client, redisjobs: RedisJobs
) -> None:
    running, waiting = jobs.add.delay(1, 1), jobs.add.delay(2, 2)
    redisjobs.store.claim(Q, "w1", 1, 1, 60_000)  # the first is running now
    response = act(admin_client, "cancel", queue=Q, ids=[waiting.id, running.id])
    assert said(response) == "1 job cancelled; 1 running job asked to stop."
    assert waiting.refresh().status is JobStatus.CANCELLED
    assert running.refresh().status is JobStatus.ACTIVE
    assert running.job.cancel_requested


def test_delete_finished_jobs_keeps_waiting_ones(
    admin_client: Client, redisjobs: RedisJobs
) -> None:
    (gone,) = dead(redisjobs)
    kept = jobs.add.delay(1, 1)
    response = act(admin_client, "delete", queue=Q, ids=[gone.id, kept.id])
    assert said(response) == "1 job deleted; 1 had not ended and was kept."
    with pytest.raises(JobDoesNotExist):
        gone.refresh()


def test_purge_dead_and_empty_ready(admin_client: Client, redisjobs: RedisJobs) -> None:
    dead(redisjobs, 2)
    jobs.add.delay(1, 1)
    assert said(act(admin_client, "purge_dead", queue=Q)) == "2 dead jobs deleted."
    assert said(act(admin_client, "empty_ready", queue=Q)) == "1 ready job deleted."
    counts = redisjobs.store.counts(Q)
    assert counts[JobState.DEAD] == counts[JobState.QUEUED] == 0


def test_pause_and_resume(admin_client: Client, redisjobs: RedisJobs) -> None:
    assert said(act(admin_client, "pause", queue=Q)) == "Queue 'default' paused."
    assert redisjobs.store.paused_queues([Q]) == {Q}
    page = admin_client.get(console_url("changelist")).content.decode()
    assert "Resume" in page
    assert said(act(admin_client, "resume", queue=Q)) == "Queue 'default' resumed."
    assert (
        said(act(admin_client, "resume", queue=Q)) == "Queue 'default' was not paused."
    )


def test_run_a_cron_entry_now(admin_client: Client, redisjobs: RedisJobs) -> None:
    cron = [{"name": "nightly", "function": "tests.jobs.add",
             "schedule": "0 3 * * *", "args": [1, 2]}]  # fmt: skip
    with override_settings(
        REDISJOBS={**redisjobs.settings, "ON_COMMIT": False, "CRON": cron}
    ):
        response = act(admin_client, "run_cron", entry="nightly")
        message = said(response)
        assert message.startswith("Cron entry 'nightly' enqueued job ")
        assert redisjobs.store.counts(Q)[JobState.QUEUED] == 1
        redisjobs.run_worker()
        job_id = message.split("job ")[1].split(";")[0]
        assert redisjobs.store.get(job_id, Q).result_json == "3"
        assert act(admin_client, "run_cron", entry="nope").status_code == 404


def test_no_selection_is_a_warning(admin_client: Client, redisjobs: RedisJobs) -> None:
    response = act(admin_client, "retry", queue=Q)
    assert said(response) == "No jobs were selected; nothing was done."


def test_an_unknown_action_or_bad_queue_is_404(
    admin_client: Client, redisjobs: RedisJobs
) -> None:
    assert act(admin_client, "explode", queue=Q).status_code == 404
    assert act(admin_client, "pause", queue="bad queue").status_code == 404


def test_an_outside_next_is_not_followed(
    admin_client: Client, redisjobs: RedisJobs
) -> None:
    response = act(admin_client, "pause", queue=Q, next="https://evil.example/")
    assert response["Location"] == console_url("changelist")


CHANGE = ["retry", "cancel", "retry_dead", "pause", "resume", "run_cron"]
DELETE = ["delete", "purge_dead", "empty_ready"]


@pytest.mark.parametrize("name", CHANGE + DELETE)
def test_every_action_checks_its_permission(redisjobs: RedisJobs, name: str) -> None:
    data = {"queue": Q, "ids": ["0" * 32], "entry": "x"}
    anonymous = Client().post(console_url("action", name), data)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    not_staff = act(client_for("view", "change", "delete", staff=False), name, **data)
    assert "/admin/login/" in not_staff["Location"]
    assert act(client_for(), name, **data).status_code == 403
    assert act(client_for("view"), name, **data).status_code == 403
    needed = "change" if name in CHANGE else "delete"
    other = "delete" if needed == "change" else "change"
    assert act(client_for("view", other), name, **data).status_code == 403
    allowed = act(client_for("view", needed), name, confirm=False, **data)
    assert allowed.status_code in (200, 404)  # the confirmation page (or no entry)
