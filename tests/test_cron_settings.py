"""REDISJOBS["CRON"]: validation, system checks and ``manage.py cron``."""

from io import StringIO
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from django_redisjobs import keys
from django_redisjobs.conf import get_settings
from django_redisjobs.cron import slot_job_id
from django_redisjobs.exceptions import RedisJobsConfigurationError
from django_redisjobs.job import from_ms
from django_redisjobs.scheduler import Scheduler
from tests.test_cron_scheduler import ms

OK = {"name": "ok", "function": "tests.cron_jobs.record", "schedule": "@daily"}


def cron_checks(cron: Any) -> list[checks.CheckMessage]:
    with override_settings(REDISJOBS={"REDIS_URL": "redis://x:1/0", "CRON": cron}):
        return checks.run_checks(tags=["redisjobs"])


def test_valid_cron_entries_pass_the_checks() -> None:
    assert cron_checks([OK, {**OK, "name": "other", "timezone": "Asia/Tokyo"}]) == []


@pytest.mark.parametrize(
    ("change", "check_id", "message"),
    [
        ({"schedule": "61 * * * *"}, "redisjobs.E002", "not a valid cron expression"),
        ({"schedule": "@often"}, "redisjobs.E002", "use five fields"),
        ({"function": "tests.cron_jobs.missing"}, "redisjobs.E003", "No background"),
        ({"function": "tests.cron_jobs.plain"}, "redisjobs.E003", "No background"),
        ({"function": "nowhere.at_all"}, "redisjobs.E003", "cannot be imported"),
        ({"timezone": "Europe/Bonn"}, "redisjobs.E004", "not an IANA time zone"),
        ({"missed": "never"}, "redisjobs.E005", "has missed 'never'"),
        ({"queue": "has space"}, "redisjobs.E005", "has queue 'has space'"),
        ({"args": [{1, 2}]}, "redisjobs.E005", "not JSON-serialisable"),
    ],
)
def test_invalid_cron_entry_is_a_system_check_error(
    change: dict[str, Any], check_id: str, message: str
) -> None:
    (error,) = cron_checks([{**OK, **change}])

    assert error.id == check_id
    assert message in error.msg
    assert "'ok'" in error.msg and error.msg.startswith("REDISJOBS['CRON']")


def test_duplicate_names_and_non_list_are_reported() -> None:
    (duplicate,) = cron_checks([OK, OK])
    assert duplicate.id == "redisjobs.E005" and "more than once" in duplicate.msg
    (not_a_list,) = cron_checks({"ok": OK})
    assert not_a_list.id == "redisjobs.E001" and "cron entry dicts" in (
        not_a_list.hint or ""
    )


def test_invalid_cron_entry_makes_the_settings_unusable() -> None:
    with (
        override_settings(REDISJOBS={"CRON": [{**OK, "timezone": "Nowhere"}]}),
        pytest.raises(RedisJobsConfigurationError, match=r"'CRON'\] has an invalid"),
    ):
        get_settings()


def test_settings_hold_parsed_entries_in_time_zone_by_default() -> None:
    with override_settings(
        REDISJOBS={"CRON": [OK, {**OK, "name": "utc", "timezone": "UTC"}]},
        TIME_ZONE="Europe/Berlin",
    ):
        first, second = get_settings().cron
    assert first.timezone == "Europe/Berlin" and second.timezone == "UTC"
    assert first.function == "tests.cron_jobs.record"


# -- manage.py cron ---------------------------------------------------------------

ENTRIES = [
    {
        "name": "report",
        "function": "tests.cron_jobs.record",
        "schedule": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "args": ["report"],
    },
    {
        "name": "failing",
        "function": "tests.cron_jobs.fail",
        "schedule": "0 * * * *",
        "kwargs": {"label": "failing"},
    },
    {"name": "cleared", "function": "tests.cron_jobs.record", "schedule": "0 * * * *"},
    {
        "name": "idle",
        "function": "tests.cron_jobs.record",
        "schedule": "@yearly",
        "missed": "all",
        "missed_limit": 3,
    },
]


def run_cron_command(*args: str) -> str:
    out = StringIO()
    call_command("cron", *args, stdout=out)
    return out.getvalue()


def test_cron_command_lists_next_fire_times_and_last_outcomes(redisjobs: Any) -> None:
    settings = {**redisjobs.settings, "CRON": ENTRIES}
    with override_settings(REDISJOBS=settings):
        scheduler = Scheduler(redisjobs.store, ())
        scheduler.tick(ms("2024-03-30 12:00"))
        scheduler.tick(ms("2024-03-31 01:00:05"))  # 03:00 CEST
        redisjobs.run_worker(queues=("cron", "default"), scheduler=False)
        fire = from_ms(ms("2024-03-31 01:00"))
        assert fire is not None
        cleared = slot_job_id("cleared", fire)
        redisjobs.client.delete(keys.job(redisjobs.prefix, "cron", cleared))

        output = run_cron_command("--now", "2024-03-31T01:00:10+00:00", "--next", "2")

    report_id, failing_id = slot_job_id("report", fire), slot_job_id("failing", fire)
    assert (
        "report\n"
        "  function: tests.cron_jobs.record (queue cron)\n"
        "  schedule: 30 2 * * * in Europe/Berlin, missed: latest\n"
        "  next:     2024-04-01 02:30:00 CEST, 2024-04-02 02:30:00 CEST\n"
        f"  last:     2024-03-31 03:00:00 CEST, job {report_id} succeeded\n"
    ) in output
    assert (
        f"  last:     2024-03-31 01:00:00 UTC, job {failing_id} dead "
        "(builtins.ValueError: failing failed)\n"
    ) in output
    assert f"job {cleared} expired (past its result TTL)" in output
    assert (
        "idle\n"
        "  function: tests.cron_jobs.record (queue cron)\n"
        "  schedule: @yearly in UTC, missed: all (at most 3)\n"
        "  next:     2025-01-01 00:00:00 UTC, 2026-01-01 00:00:00 UTC\n"
        "  last:     never fired\n"
    ) in output
    # Decorated functions are entries too.
    assert "tests.cron_jobs.new_year\n" in output


def test_cron_command_reports_an_entry_whose_function_is_gone(redisjobs: Any) -> None:
    broken = {**ENTRIES[0], "function": "tests.cron_jobs.missing"}
    with override_settings(REDISJOBS={**redisjobs.settings, "CRON": [broken]}):
        output = run_cron_command()
    assert "report\n  error:    No background function" in output


def test_cron_command_rejects_a_bad_count(redisjobs: Any) -> None:
    with pytest.raises(CommandError, match="--next must be 1 or more"):
        run_cron_command("--next", "0")


def test_cron_command_turns_redis_errors_into_command_errors() -> None:
    with (
        override_settings(
            REDISJOBS={"REDIS_URL": "redis://127.0.0.1:1/0", "CRON": [OK]}
        ),
        pytest.raises(CommandError, match="Could not read from Redis"),
    ):
        run_cron_command()
