"""Cron entries without Redis: parsing, fire times, DST rules, missed-run planning."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from django_redisjobs import InvalidCronEntry, background
from django_redisjobs.cron import (
    CronEntry,
    MissedPolicy,
    Schedule,
    parse_entry,
    parse_schedule,
    slot_job_id,
)
from tests import cron_jobs

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(text: str, zone: ZoneInfo, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def forward(schedule: Schedule, start: datetime, count: int) -> list[datetime]:
    fires, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        fires.append(moment)
    return fires


# -- DST: spring forward ----------------------------------------------------------


def test_fire_times_are_utc() -> None:
    schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
    assert schedule.next_after(local("2024-10-26 12:00", BERLIN)).tzinfo is UTC


def test_croniter_itself_fires_a_repeated_time_twice() -> None:
    # Why cron.py maps wall times itself: croniter 7 fires 02:30 in both passes.
    it = croniter("30 2 * * *", local("2024-10-26 12:00", BERLIN))
    first, second = it.get_next(datetime), it.get_next(datetime)
    assert first.date() == second.date() == datetime(2024, 10, 27).date()


@pytest.mark.parametrize(
    ("zone", "day", "expected_utc"),
    [
        # Berlin skips 02:00-03:00 on 2024-03-31; 03:00 CEST is 01:00 UTC.
        (BERLIN, "2024-03-30", "2024-03-31 01:00"),
        # New York skips 02:00-03:00 on 2024-03-10; 03:00 EDT is 07:00 UTC.
        (NEW_YORK, "2024-03-09", "2024-03-10 07:00"),
    ],
)
def test_time_skipped_by_spring_forward_fires_once_at_end_of_gap(
    zone: ZoneInfo, day: str, expected_utc: str
) -> None:
    schedule = parse_schedule("30 2 * * *", zone.key)

    fires = forward(schedule, local(f"{day} 12:00", zone), 3)

    assert fires[0] == utc(expected_utc)
    assert fires[0].astimezone(zone).strftime("%H:%M") == "03:00"
    # The day after, 02:30 exists again; one fire per day throughout.
    assert [f.astimezone(zone).strftime("%H:%M") for f in fires[1:]] == ["02:30"] * 2
    assert fires[1] - fires[0] == timedelta(hours=23, minutes=30)
    assert fires[2] - fires[1] == timedelta(hours=24)


def test_several_skipped_times_collapse_into_one_fire() -> None:
    schedule = parse_schedule("*/15 2 * * *", "Europe/Berlin")

    fires = forward(schedule, local("2024-03-30 12:00", BERLIN), 2)

    assert fires == [utc("2024-03-31 01:00"), local("2024-04-01 02:00", BERLIN)]


def test_interval_entry_keeps_its_pace_across_spring_forward() -> None:
    schedule = parse_schedule("*/30 * * * *", "Europe/Berlin")

    fires = forward(schedule, local("2024-03-31 01:00", BERLIN), 3)

    # 01:30 CET, then 03:00 CEST: thirty real minutes apart.
    assert fires == [
        utc("2024-03-31 00:30"),
        utc("2024-03-31 01:00"),
        utc("2024-03-31 01:30"),
    ]


def test_skipped_time_collapses_with_a_regular_fire_at_gap_end() -> None:
    schedule = parse_schedule("0,30 2,3 * * *", "Europe/Berlin")

    fires = forward(schedule, local("2024-03-31 00:00", BERLIN), 2)

    # 02:00 and 02:30 do not exist and 03:00 does: one fire at 03:00, then 03:30.
    assert fires == [utc("2024-03-31 01:00"), utc("2024-03-31 01:30")]


def test_a_day_skipped_whole_fires_its_time_at_the_end_of_the_gap() -> None:
    # Samoa skipped 2011-12-30 entirely, moving from -10:00 to +14:00.
    schedule = parse_schedule("0 12 * * *", "Pacific/Apia")
    zone = ZoneInfo("Pacific/Apia")

    fires = forward(schedule, local("2011-12-29 13:00", zone), 2)

    assert [f.astimezone(zone).isoformat() for f in fires] == [
        "2011-12-31T00:00:00+14:00",
        "2011-12-31T12:00:00+14:00",
    ]


# -- DST: fall back ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expression", "day", "first_utc"),
    [
        # Berlin repeats 02:00-03:00 on 2024-10-27; 02:30 CEST is 00:30 UTC.
        (BERLIN, "30 2 * * *", "2024-10-26", "2024-10-27 00:30"),
        # New York repeats 01:00-02:00 on 2024-11-03; 01:30 EDT is 05:30 UTC.
        (NEW_YORK, "30 1 * * *", "2024-11-02", "2024-11-03 05:30"),
    ],
)
def test_time_in_repeated_hour_fires_once_at_first_occurrence(
    zone: ZoneInfo, expression: str, day: str, first_utc: str
) -> None:
    schedule = parse_schedule(expression, zone.key)

    fires = forward(schedule, local(f"{day} 12:00", zone), 2)

    assert fires[0] == utc(first_utc)
    # The next fire is the next day, not the same wall time an hour later.
    assert fires[1] - fires[0] == timedelta(hours=25)


def test_interval_entry_pauses_during_the_repeated_hour() -> None:
    schedule = parse_schedule("*/30 * * * *", "Europe/Berlin")

    fires = forward(schedule, local("2024-10-27 01:00", BERLIN), 4)

    assert [f.astimezone(BERLIN).strftime("%H:%M %Z") for f in fires] == [
        "01:30 CEST",
        "02:00 CEST",
        "02:30 CEST",
        "03:00 CET",
    ]


def test_next_fire_from_inside_the_second_pass_skips_fired_wall_times() -> None:
    schedule = parse_schedule("*/30 * * * *", "Europe/Berlin")
    second_pass = local("2024-10-27 02:10", BERLIN, fold=1)

    assert schedule.next_after(second_pass) == utc("2024-10-27 02:00")  # 03:00 CET
    # Looking back from there finds the first pass's 02:30 CEST, already fired.
    assert schedule.latest(second_pass) == utc("2024-10-27 00:30")


# -- forward and backward agree ---------------------------------------------------


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "UTC"])
@pytest.mark.parametrize("expression", ["*/20 * * * *", "30 2 * * *", "15 1-3 * * *"])
@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2024-03-09 12:00", "2024-03-11 00:00"),  # New York springs forward
        ("2024-03-30 12:00", "2024-04-01 00:00"),  # Berlin springs forward
        ("2024-10-26 12:00", "2024-10-28 00:00"),  # Berlin falls back
        ("2024-11-02 12:00", "2024-11-04 00:00"),  # New York falls back
    ],
)
def test_backward_search_finds_exactly_the_forward_fire_times(
    zone: str, expression: str, start: str, end: str
) -> None:
    schedule = parse_schedule(expression, zone)
    after, until = utc(start), utc(end)
    chain, moment = [], after
    while (moment := schedule.next_after(moment)) <= until:
        chain.append(moment)

    assert schedule.between(after, until, limit=10_000) == chain
    assert chain == sorted(set(chain))
    walls = [f.astimezone(schedule.zone).replace(tzinfo=None) for f in chain]
    assert len(set(walls)) == len(walls)  # each wall time fires once
    for index in range(1, len(chain), 7):
        assert schedule.latest(chain[index]) == chain[index]
        assert schedule.latest(chain[index] - timedelta(seconds=1)) == chain[index - 1]


def test_between_keeps_the_newest_fire_times_up_to_the_limit() -> None:
    schedule = parse_schedule("*/5 * * * *", "UTC")

    fires = schedule.between(utc("2024-01-01 10:00"), utc("2024-01-01 11:00"), 3)

    assert fires == [
        utc("2024-01-01 10:50"),
        utc("2024-01-01 10:55"),
        utc("2024-01-01 11:00"),
    ]


# -- missed-run planning ----------------------------------------------------------


def entry(missed: str = "latest", limit: int = 10) -> CronEntry:
    return parse_entry(
        {
            "name": "e",
            "function": "tests.cron_jobs.record",
            "schedule": "*/5 * * * *",
            "missed": missed,
            "missed_limit": limit,
        },
        default_timezone="UTC",
    )


ON_TIME = timedelta(minutes=1)


def test_on_time_fire_is_due_under_every_policy() -> None:
    for policy in MissedPolicy:
        due = entry(policy).due(
            utc("2024-01-01 09:59:59"), utc("2024-01-01 10:00:01"), ON_TIME
        )
        assert due == [utc("2024-01-01 10:00")], policy


def test_missed_policies_after_an_hour_without_scheduler() -> None:
    after, now = utc("2024-01-01 09:00:01"), utc("2024-01-01 10:02:00")

    assert entry("latest").due(after, now, ON_TIME) == [utc("2024-01-01 10:00")]
    assert entry("skip").due(after, now, ON_TIME) == []
    assert entry("all", 3).due(after, now, ON_TIME) == [
        utc("2024-01-01 09:50"),
        utc("2024-01-01 09:55"),
        utc("2024-01-01 10:00"),
    ]
    assert len(entry("all", 100).due(after, now, ON_TIME)) == 12


def test_nothing_is_due_once_handled() -> None:
    for policy in MissedPolicy:
        assert (
            entry(policy).due(utc("2024-01-01 10:00"), utc("2024-01-01 10:04"), ON_TIME)
            == []
        )


def test_slot_job_id_is_deterministic_and_starts_with_fire_ms() -> None:
    fire = utc("2024-01-01 10:00")
    job_id = slot_job_id("nightly", fire)

    assert job_id == slot_job_id("nightly", fire.astimezone(BERLIN))
    assert len(job_id) == 32 and int(job_id, 16) >= 0
    assert int(job_id[:12], 16) == int(fire.timestamp() * 1000)
    assert job_id != slot_job_id("weekly", fire)
    assert job_id != slot_job_id("nightly", fire + timedelta(minutes=1))


# -- validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", r"schedule '61 \* \* \* \*', which is not a valid cron"),
        ("*/0 * * * *", "not a valid cron expression"),
        ("0 0 30 2 *", "not a valid cron expression"),  # never matches
        ("* * * * * 30", "use five fields"),  # croniter would read seconds
        ("every day", "use five fields"),
        (5, "has schedule 5; use five fields"),
    ],
)
def test_invalid_expression_is_a_typed_error(expression: object, message: str) -> None:
    with pytest.raises(InvalidCronEntry, match=message) as info:
        parse_schedule(expression, "UTC", entry="x")
    assert info.value.field == "schedule"


def test_aliases_are_accepted() -> None:
    schedule = parse_schedule("@daily", "UTC")
    assert schedule.next_after(utc("2024-01-01 10:00")) == utc("2024-01-02 00:00")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", "", None])
def test_unknown_timezone_is_a_typed_error(zone: object) -> None:
    with pytest.raises(InvalidCronEntry, match="not an IANA time zone") as info:
        parse_schedule("* * * * *", zone)
    assert info.value.field == "timezone"


def test_parse_entry_applies_defaults() -> None:
    parsed = parse_entry(
        {"name": "n", "function": "a.b", "schedule": "0 3 * * *"},
        default_timezone="Europe/Berlin",
    )
    assert parsed.timezone == "Europe/Berlin"
    assert parsed.missed is MissedPolicy.LATEST and parsed.missed_limit == 10
    assert parsed.args == () and parsed.kwargs == {} and parsed.queue is None


ENTRY = {"name": "n", "function": "a.b", "schedule": "@daily"}


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ("x", "", "not a dict"),
        (
            {"name": "a b", "function": "a.b", "schedule": "@daily"},
            "name",
            "name 'a b'",
        ),
        ({"name": "n", "function": "ab", "schedule": "@daily"}, "function", "dotted"),
        # Each passed; none can name a function, and '.x' made importlib raise
        # ValueError (not ImportError) in the system checks and the scheduler.
        (
            {**ENTRY, "function": ".x"},
            "function",
            r"has function '\.x'; use the dotted",
        ),
        ({**ENTRY, "function": "..x"}, "function", r"has function '\.\.x'"),
        ({**ENTRY, "function": "a..b"}, "function", "has function 'a..b'"),
        ({**ENTRY, "function": "a.b\n"}, "function", r"has function 'a.b\\n'"),
        ({**ENTRY, "function": "my-app.jobs.x"}, "function", "has function 'my-app"),
        (
            {"name": "n", "function": "a.b", "schedule": "@daily", "when": 1},
            "",
            "unknown",
        ),
        (
            {"name": "n", "function": "a.b", "schedule": "@daily", "queue": "a:b"},
            "queue",
            "queue",
        ),
        (
            {"name": "n", "function": "a.b", "schedule": "@daily", "missed": "some"},
            "missed",
            "'skip'",
        ),
        # A value that cannot be hashed made the set lookup raise TypeError.
        ({**ENTRY, "missed": ["all"]}, "missed", r"has missed \['all'\]; use 'lat"),
        (
            {"name": "n", "function": "a.b", "schedule": "@daily", "missed_limit": 0},
            "missed_limit",
            "1 or more",
        ),
        (
            {"name": "n", "function": "a.b", "schedule": "@daily", "args": "x"},
            "args",
            "a list",
        ),
        (
            {"name": "n", "function": "a.b", "schedule": "@daily", "kwargs": {1: 2}},
            "kwargs",
            "str keys",
        ),
        (
            {"name": "n", "function": "a.b", "schedule": "@daily", "args": [object()]},
            "args",
            "JSON",
        ),
    ],
)
def test_parse_entry_names_the_bad_key(raw: object, field: str, message: str) -> None:
    with pytest.raises(InvalidCronEntry, match=message) as info:
        parse_entry(raw, default_timezone="UTC")
    assert info.value.field == field


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (10**5000, "", r"^A cron entry is <an int of 16610 bits>, not a dict\.$"),
        (
            {**ENTRY, "queue": 10**5000},
            "queue",
            r"^Cron entry 'n' has queue <an int of 16610 bits>; use a queue name",
        ),
        (
            {**ENTRY, 1: "x", "when": 2},
            "",
            r"^Cron entry 'n' has unknown keys \['when', 1\]; known keys are",
        ),
    ],
    ids=["huge-int-entry", "huge-int-queue", "mixed-unknown-keys"],
)
def test_parse_entry_shows_any_value_without_raising_while_building_the_message(
    raw: object, field: str, message: str
) -> None:
    # Each used to raise ValueError (repr() of an int of more than 4,300 digits)
    # or TypeError (sorted() over keys of mixed types) instead.
    with pytest.raises(InvalidCronEntry, match=message) as info:
        parse_entry(raw, default_timezone="UTC")
    assert info.value.field == field


def test_decorator_rejects_an_invalid_expression_before_registering() -> None:
    with pytest.raises(InvalidCronEntry, match="'tests.cron_jobs.plain' has schedule"):
        background(cron="61 * * * *")(cron_jobs.plain)


def test_decorator_rejects_a_cron_function_that_needs_arguments() -> None:
    with pytest.raises(InvalidCronEntry, match="without arguments"):
        background(cron="* * * * *")(cron_jobs.needs_argument)


def test_decorator_keeps_the_expression_on_the_spec() -> None:
    assert cron_jobs.new_year.spec.cron == "0 0 1 1 *"
