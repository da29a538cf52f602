"""Property: any cron entry gives either a `CronEntry` the scheduler can use, or
`InvalidCronEntry`; never another exception.

"Can use" means what the scheduler and the system checks do with an entry: find
fire times around any moment in its zone (DST included), name the slot's job,
encode its arguments, and look its function up by a dotted name.

Examples per property (Hypothesis with ``database=None``: nothing is written to
disk), about 3 s in all on two shared cores:

- any entry through ``parse_entry``, then its fire times: 600
- any list of entries through ``conf.parse_cron``: 200
"""

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from django_redisjobs.conf import parse_cron
from django_redisjobs.cron import (
    ENTRY_KEYS,
    CronEntry,
    MissedPolicy,
    parse_entry,
    slot_job_id,
)
from django_redisjobs.exceptions import InvalidCronEntry, UnknownBackgroundFunction
from django_redisjobs.keys import is_safe_name
from django_redisjobs.registry import registry
from django_redisjobs.serialization import encode_arguments
from tests.strategies import huge_ints, scalars, texts

anything = st.one_of(
    scalars,
    st.lists(st.integers() | texts, max_size=2),
    st.dictionaries(texts | st.integers(), st.integers(), max_size=2),
    st.just(object()),
)


def mostly(usual: st.SearchStrategy[Any], rest: st.SearchStrategy[Any]) -> Any:
    """`usual` three times in four, else `rest`."""
    return st.one_of(usual, usual, usual, rest)


# One cron field: the pieces croniter knows (ranges, steps, lists, names, L, W,
# #, ?), numbers in and out of range, and odd text.
atoms = st.one_of(
    st.just("*"),
    st.integers(-1, 62).map(str),
    st.sampled_from(["jan", "dec", "mon", "sun", "L", "5L", "15W", "1#2", "?", "H"]),
)
cron_fields = st.one_of(
    atoms,
    st.builds("{}-{}".format, atoms, atoms),
    st.builds("{}/{}".format, atoms, st.integers(-1, 61)),
    st.lists(atoms, min_size=2, max_size=3).map(",".join),
)
# Valid expressions, around DST changes too (02:30 is skipped in Berlin in
# spring, repeated in autumn), half the time; generated or odd ones otherwise.
valid_expressions = st.sampled_from(
    [
        "* * * * *",
        "*/7 * * * *",
        "30 2 * * *",
        "0 0 29 2 *",
        "0 0 L * *",
        "0 9 * * 1#2",
        "15 10 * jan,jul mon-fri",
        "@daily",
        "@hourly",
    ]
)
expressions = st.one_of(
    valid_expressions,
    valid_expressions,
    st.lists(cron_fields, min_size=5, max_size=5).map(" ".join),
    st.sampled_from(["@yearly", "@reboot", "* * * * * *", ""]) | texts,
)
zones = st.sampled_from(
    ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
)
good_functions = st.sampled_from(
    ["tests.cron_jobs.record", "nowhere.at_all", "tests.jobs.add"]
)
functions = st.one_of(
    good_functions,
    good_functions,
    st.sampled_from([".x", "a..b", "a.", "a.b.", " a.b", "a.b\n", "a-b.c", "1.x"]),
    texts,
)
names = mostly(st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True), texts)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(texts, inner, max_size=2)
    ),
    max_leaves=4,
)
by_key: dict[str, st.SearchStrategy[Any]] = {
    "name": names,
    "function": functions,
    "schedule": expressions,
    "args": mostly(st.lists(json_values, max_size=2), anything),
    "kwargs": mostly(st.dictionaries(texts, json_values, max_size=2), anything),
    "queue": mostly(st.none() | st.sampled_from(["default", "other"]), names),
    "timezone": mostly(zones, texts),
    "missed": mostly(st.sampled_from(list(MissedPolicy)), texts),
    "missed_limit": mostly(st.integers(1, 100), st.integers(-2, 2) | huge_ints),
}


@st.composite
def entries(draw: st.DrawFn) -> Any:
    """An entry with the required keys most of the time, a few optional ones,
    and at most one value of any type or one unknown key."""
    required = ["name", "function", "schedule"]
    optional = sorted(ENTRY_KEYS - set(required))
    keys = [k for k in required if draw(st.integers(0, 19))] + sorted(
        draw(st.sets(st.sampled_from(optional), max_size=4))
    )
    odd = draw(st.sampled_from(["", "", "", "unknown key", *keys]))
    entry: dict[Any, Any] = {
        key: draw(anything if key == odd else by_key[key]) for key in keys
    }
    if odd == "unknown key":
        entry[draw(texts | st.integers())] = draw(anything)
    return entry


# Any moment, or one within 90 minutes of a clock change in the zones above
# (Lord Howe moves by 30 minutes).
dst_changes = st.sampled_from(
    [
        datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # Berlin springs forward
        datetime(2024, 10, 27, 1, 0, tzinfo=UTC),  # Berlin falls back
        datetime(2024, 3, 10, 7, 0, tzinfo=UTC),  # New York
        datetime(2024, 11, 3, 6, 0, tzinfo=UTC),
        datetime(2024, 4, 6, 15, 0, tzinfo=UTC),  # Lord Howe
        datetime(2024, 10, 5, 15, 30, tzinfo=UTC),
    ]
)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.just(UTC),
) | st.builds(
    lambda change, minutes: change + timedelta(minutes=minutes),
    dst_changes,
    st.integers(-90, 90),
)


def check_usable(entry: CronEntry, moment: datetime) -> None:
    """What the scheduler and the checks do with a parsed entry."""
    assert is_safe_name(entry.name)
    assert entry.queue is None or is_safe_name(entry.queue)
    assert entry.missed in MissedPolicy
    assert isinstance(entry.missed_limit, int) and entry.missed_limit >= 1
    encode_arguments(entry.args, entry.kwargs)
    fire = entry.schedule.next_after(moment)
    assert fire.tzinfo is UTC and fire > moment
    assert len(slot_job_id(entry.name, fire)) == 32
    latest = entry.schedule.latest(fire)
    assert latest == fire
    for policy_due in entry.due(moment, fire, timedelta(minutes=1)):
        assert moment < policy_due <= fire
    with contextlib.suppress(UnknownBackgroundFunction):
        registry.load(entry.function)


@settings(max_examples=600, deadline=None, database=None)
@given(raw=mostly(entries(), anything), moment=moments)
def test_any_entry_parses_to_a_usable_entry_or_invalid_cron_entry(
    raw: Any, moment: datetime
) -> None:
    try:
        entry = parse_entry(raw, default_timezone="Europe/Berlin")
    except InvalidCronEntry as err:
        assert str(err).endswith("."), err
        assert err.field in {"", *ENTRY_KEYS}
        return
    check_usable(entry, moment)


@settings(max_examples=200, deadline=None, database=None)
@given(raw=st.lists(mostly(entries(), anything), max_size=4))
def test_any_entry_list_parses_to_entries_and_errors(raw: list[Any]) -> None:
    parsed, errors = parse_cron(raw)
    assert len(parsed) + len(errors) == len(raw)
    assert len({entry.name for entry in parsed}) == len(parsed)
    assert all(isinstance(err, InvalidCronEntry) for err in errors)
