"""The console in headless Chromium (Debian's package, driven by Playwright from
PyPI, no browser download) against pytest-django's live_server (issue 12).

With REDISJOBS_SCREENSHOTS set to a directory (docs/admin for the docs), the
tests save the screenshots docs/admin.md shows there.
"""

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from playwright.sync_api import sync_playwright

from django_redisjobs import JobStatus
from django_redisjobs.job import now_epoch_ms
from django_redisjobs.scheduler import Scheduler
from tests import jobs
from tests.admin_helpers import console_url
from tests.conftest import RedisJobs

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup --with-test-deps.")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls of
    # the test (users) are plain sync calls between browser steps.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, live_server: Any, redisjobs: RedisJobs) -> Iterator[Any]:
    User.objects.create_superuser("ops", password="ops-password")
    with override_settings(REDISJOBS={**redisjobs.settings, "ON_COMMIT": False}):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.set_default_timeout(10_000)
        tab.goto(live_server.url + "/admin/login/")
        tab.fill("#id_username", "ops")
        tab.fill("#id_password", "ops-password")
        tab.click("input[type=submit]")
        tab.wait_for_selector("#content-main")
        yield tab
        context.close()


def shoot(tab: Any, name: str) -> None:
    folder = os.environ.get("REDISJOBS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_retry_a_dead_job_and_see_it_succeed(
    page: Any, live_server: Any, redisjobs: RedisJobs, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    handle = jobs.fails_until_file_exists.delay(str(flag))
    jobs.add.delay(1, 2)
    jobs.add.using(queue="emails").delay(3, 4)
    redisjobs.run_worker(queues=("default", "emails"))
    jobs.add.delay(5, 6)
    page.goto(live_server.url + console_url("changelist"))
    assert page.inner_text('tr[data-queue="default"] [data-count="dead"]') == "1"
    shoot(page, "overview")
    if os.environ.get("REDISJOBS_SCREENSHOTS"):
        page.emulate_media(color_scheme="dark")  # the admin's theme follows it
        shoot(page, "overview-dark")
        page.emulate_media(color_scheme="light")
    page.goto(live_server.url + console_url("jobs", "default", "dead"))
    shoot(page, "job-list")
    page.click(f"text={handle.id}")
    assert "FileNotFoundError" in page.inner_text("#job-error")
    shoot(page, "dead-job")
    page.click("button:has-text('Retry')")
    page.click("input[value='Yes, retry']")
    assert "1 job retried." in page.inner_text(".messagelist")
    flag.touch()
    redisjobs.run_worker()
    page.reload()
    assert page.inner_text("[data-status]") == "succeeded"
    assert handle.refresh().status is JobStatus.SUCCEEDED


def test_watch_a_progress_bar_move(
    page: Any, live_server: Any, redisjobs: RedisJobs
) -> None:
    jobs.gate.clear()
    handle = jobs.half_then_waits.delay()
    page.goto(live_server.url + console_url("job", "default", handle.id))
    assert page.get_attribute("[data-progress]", "value") == "0"
    worker = threading.Thread(target=redisjobs.run_worker)
    worker.start()
    try:
        page.wait_for_function("document.querySelector('[data-progress]').value === 50")
        assert page.inner_text("[data-progress-message]") == "half way"
        assert page.inner_text("[data-status]") == "active"
    finally:
        jobs.gate.set()
        worker.join(20)
    page.wait_for_function(
        "document.querySelector('[data-status]').textContent === 'succeeded'"
    )
    assert "finished" in page.inner_text("#job-result")


def test_pause_a_queue_and_see_it_paused(
    page: Any, live_server: Any, redisjobs: RedisJobs
) -> None:
    cron = [{"name": "nightly-report", "function": "tests.jobs.add",
             "schedule": "30 2 * * *", "args": [1, 2],
             "timezone": "Europe/Berlin"}]  # fmt: skip
    with override_settings(
        REDISJOBS={**redisjobs.settings, "ON_COMMIT": False, "CRON": cron}
    ):
        # Two ticks a day apart: the first starts the entry's watermark, the
        # second enqueues its latest fire time; a worker then runs that job.
        scheduler = Scheduler(redisjobs.store, ())
        now_ms = now_epoch_ms()
        scheduler.tick(now_ms - 2 * 86_400_000)
        scheduler.tick(now_ms)
        redisjobs.run_worker()
        page.goto(live_server.url + console_url("cron"))
        text = page.inner_text("#content-main")
        assert "every day at 02:30, Europe/Berlin" in text
        assert "succeeded" in text  # the outcome of the last fire's job
        shoot(page, "cron")
    page.goto(live_server.url + console_url("changelist"))
    row = 'tr[data-queue="default"]'
    assert page.inner_text(f"{row} [data-count='queued']") == "0"
    jobs.add.delay(2, 2)  # the counts follow without a reload
    page.wait_for_function(
        'document.querySelector(\'tr[data-queue="default"] '
        "[data-count=\"queued\"]').textContent === '1'"
    )
    page.click(f"{row} button:has-text('Pause')")
    page.click("input[value='Yes, pause']")
    assert "Queue 'default' paused." in page.inner_text(".messagelist")
    assert page.inner_text(f"{row} [data-paused]") == "paused"
    assert redisjobs.store.paused_queues(["default"]) == {"default"}
