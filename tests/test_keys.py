"""Names that go into Redis keys: letters, digits, '_', '.' and '-', and nothing
after them (a regex "$" used to let a final newline through)."""

import pytest

from django_redisjobs import InvalidCronEntry, keys
from django_redisjobs.conf import validate
from django_redisjobs.cron import parse_entry


@pytest.mark.parametrize("name", ["default", "a.b-c_D9"])
def test_safe_names_are_accepted(name: str) -> None:
    assert keys.is_safe_name(name)


@pytest.mark.parametrize("name", ["default\n", "a\nb", "", "a b", "x:y", "é"])
def test_unsafe_names_are_refused(name: str) -> None:
    assert not keys.is_safe_name(name)


@pytest.mark.parametrize("key", ["PREFIX", "DEFAULT_QUEUE"])
def test_settings_names_ending_in_a_newline_are_refused(key: str) -> None:
    assert [problem.key for problem in validate({key: "jobs\n"})] == [key]


def test_a_cron_entry_queue_ending_in_a_newline_is_refused() -> None:
    raw = {
        "name": "nightly",
        "function": "tests.jobs.add",
        "schedule": "0 3 * * *",
        "queue": "cron\n",
    }
    with pytest.raises(InvalidCronEntry, match=r"has queue 'cron\\n'; use a queue"):
        parse_entry(raw, default_timezone="UTC")


def test_a_name_that_is_not_a_str_is_not_safe() -> None:
    assert not keys.is_safe_name(5)
