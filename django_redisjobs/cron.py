"""Cron entries: parsing, validation, and fire times in an entry's time zone.

croniter matches the expression against local wall-clock times; this module maps
each matching wall time to one instant, by its own rules rather than croniter's,
because croniter (7.x) fires a repeated wall time twice when clocks fall back:

- A wall time skipped when clocks spring forward fires once, at the first instant
  after the gap (02:30 on the night Berlin jumps from 02:00 to 03:00 fires at
  03:00 CEST). Several skipped times collapse into that one fire time.
- A wall time that occurs twice when clocks fall back fires once, at its first
  occurrence (02:30 CEST, not again at 02:30 CET).

The mapping from wall time to instant never goes backwards, so fire times come out
in order and each has one identity: (entry name, instant), the cron slot.

Fire times are returned in UTC. Python compares two datetimes of one zone by wall
time, ignoring `fold`, and never finds an ambiguous local time equal to a time in
another zone (PEP 495), so instants are only compared in UTC here.
"""

import enum
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from .exceptions import InvalidCronEntry, SerializationError, shown
from .keys import is_safe_name
from .serialization import encode_arguments

ENTRY_KEYS = frozenset(
    {
        "name",
        "function",
        "schedule",
        "args",
        "kwargs",
        "queue",
        "timezone",
        "missed",
        "missed_limit",
    }
)
DEFAULT_MISSED_LIMIT = 10

_ALIASES = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
# Any fixed reference works for validation; croniter searches 50 years from it.
_REFERENCE = datetime(2000, 1, 1)


class MissedPolicy(enum.StrEnum):
    """What a scheduler does with fire times that passed while none was running."""

    LATEST = "latest"  # fire the most recent missed fire time once
    SKIP = "skip"  # fire only fire times that are still on time
    ALL = "all"  # fire every missed fire time, the most recent `missed_limit`


class Schedule:
    """A cron expression evaluated on the wall clock of one time zone."""

    def __init__(self, expression: str, zone: ZoneInfo) -> None:
        self.expression = expression
        self.zone = zone

    def __repr__(self) -> str:
        return f"<Schedule {self.expression!r} in {self.zone.key}>"

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time (UTC) strictly after the aware datetime `moment`."""
        moment = moment.astimezone(UTC)
        local = moment.astimezone(self.zone)
        wall_times = croniter(self.expression, local.replace(tzinfo=None))
        while True:
            # Inside a repeated hour the next few wall times may name instants
            # that already passed (their first occurrence); skip those.
            instant = self.resolve(wall_times.get_next(datetime))
            if instant > moment:
                return instant

    def latest(self, until: datetime) -> datetime | None:
        """The last fire time (UTC) at or before `until`; None if there is none."""
        return next(self._backwards(until), None)

    def between(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """Fire times (UTC) in (`after`, `until`], oldest first; the last `limit`."""
        after = after.astimezone(UTC)
        found: list[datetime] = []
        for instant in self._backwards(until):
            if instant <= after or len(found) >= limit:
                break
            found.append(instant)
        return found[::-1]

    def _backwards(self, until: datetime) -> Iterator[datetime]:
        """Fire times at or before `until`, newest first, each once."""
        until = until.astimezone(UTC)
        local = until.astimezone(self.zone)
        wall = local.replace(tzinfo=None)
        if local.fold:
            # In the second pass of a repeated hour, wall times up to the end of
            # that hour already fired (first pass): start the search from there.
            first_pass = local.replace(fold=0).utcoffset() or timedelta(0)
            wall += max(first_pass - (local.utcoffset() or timedelta(0)), timedelta(0))
        # croniter's get_prev is strict; one second past the minute includes it.
        start = wall.replace(second=0, microsecond=0) + timedelta(seconds=1)
        wall_times = croniter(self.expression, start)
        last: datetime | None = None
        while True:
            try:
                instant = self.resolve(wall_times.get_prev(datetime))
            except CroniterBadDateError:
                return
            # Skipped wall times collapse onto one instant: yield it once.
            if instant <= until and instant != last:
                last = instant
                yield instant

    def resolve(self, wall: datetime) -> datetime:
        """The instant (UTC) at which the naive wall-clock time `wall` fires."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        second = wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return first.astimezone(UTC)
        early, late = sorted((first.astimezone(UTC), second.astimezone(UTC)))
        if early.astimezone(self.zone).replace(tzinfo=None) == wall:
            # A repeated wall time: only its first occurrence fires.
            return early
        return self._gap_end(early, late)

    def _gap_end(self, early: datetime, late: datetime) -> datetime:
        """The first instant after a spring-forward gap that lies in (early, late].

        `early` reads the skipped wall time with the offset after the change,
        `late` with the offset before it; the change happened between them.
        Offsets change on whole seconds, so a binary search on seconds finds it.
        """
        after_offset = late.astimezone(self.zone).utcoffset()
        low, high = int(early.timestamp()), int(late.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            at_middle = datetime.fromtimestamp(middle, self.zone)
            if at_middle.utcoffset() == after_offset:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)


@dataclass(frozen=True)
class CronEntry:
    """One validated cron entry: which function to enqueue, when, and how."""

    name: str
    function: str
    schedule: Schedule
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    missed: MissedPolicy = MissedPolicy.LATEST
    missed_limit: int = DEFAULT_MISSED_LIMIT

    @property
    def expression(self) -> str:
        return self.schedule.expression

    @property
    def timezone(self) -> str:
        return self.schedule.zone.key

    def due(
        self, after: datetime | None, until: datetime, on_time: timedelta
    ) -> list[datetime]:
        """Fire times to enqueue at `until` when those up to `after` are handled.

        `after` None means not known here; the caller's claim still refuses fire
        times already handled. A fire time more than `on_time` old was missed;
        the missed policy decides which of those still fire.
        """
        floor = after or datetime.min.replace(tzinfo=UTC)
        if self.missed is MissedPolicy.ALL:
            return self.schedule.between(floor, until, self.missed_limit)
        latest = self.schedule.latest(until)
        if latest is None or latest <= floor:
            return []
        if self.missed is MissedPolicy.SKIP and latest < until - on_time:
            return []
        return [latest]


def slot_job_id(name: str, fire_time: datetime) -> str:
    """The job id of entry `name`'s fire time: 32 hex digits, like other job ids.

    The first 12 digits are the fire time in epoch ms, so cron jobs sort by age
    among other jobs; the rest come from the entry name.
    """
    fire_ms = round(fire_time.timestamp() * 1000)
    digest = hashlib.sha256(f"cron:{name}".encode()).hexdigest()
    return f"{fire_ms & 0xFFFFFFFFFFFF:012x}{digest[:20]}"


def parse_schedule(expression: Any, timezone: Any, *, entry: str = "") -> Schedule:
    """Check a cron expression and an IANA zone name; raise `InvalidCronEntry`."""
    label = f"Cron entry {entry!r}" if entry else "A cron entry"
    if not isinstance(expression, str) or not _five_fields(expression):
        raise InvalidCronEntry(
            f"{label} has schedule {shown(expression)}; use five fields (minute hour "
            "day-of-month month day-of-week) or an alias such as '@daily'.",
            field="schedule",
        )
    try:
        croniter(expression, _REFERENCE).get_next(datetime)
    except CroniterError as err:
        raise InvalidCronEntry(
            f"{label} has schedule {shown(expression)}, which is not a valid cron "
            f"expression: {err}.",
            field="schedule",
        ) from err
    return Schedule(expression, _zone(timezone, label))


def _five_fields(expression: str) -> bool:
    return expression.strip() in _ALIASES or len(expression.split()) == 5


def _zone(name: Any, label: str) -> ZoneInfo:
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise InvalidCronEntry(
        f"{label} has timezone {shown(name)}, which is not an IANA time zone name such "
        "as 'Europe/Berlin' or 'UTC'.",
        field="timezone",
    )


def parse_entry(raw: Any, *, default_timezone: str) -> CronEntry:
    """Validate one ``REDISJOBS["CRON"]`` item; raise `InvalidCronEntry`."""
    if not isinstance(raw, Mapping):
        raise InvalidCronEntry(f"A cron entry is {shown(raw)}, not a dict.", field="")
    name = raw.get("name")
    if not isinstance(name, str) or not is_safe_name(name):
        raise InvalidCronEntry(
            f"A cron entry has name {shown(name)}; use letters, digits, '_', '.' and "
            "'-'.",
            field="name",
        )
    label = f"Cron entry {name!r}"
    # Keys of any type: sorted and shown so that neither raises.
    unknown = sorted(map(shown, set(raw) - ENTRY_KEYS))
    if unknown:
        raise InvalidCronEntry(
            f"{label} has unknown keys [{', '.join(unknown)}]; known keys are "
            f"{sorted(ENTRY_KEYS)!r}.",
            field="",
        )
    _check_options(raw, label)
    return CronEntry(
        name=name,
        function=raw["function"],
        schedule=parse_schedule(
            raw.get("schedule"),
            raw.get("timezone") or default_timezone,
            entry=name,
        ),
        args=tuple(raw.get("args", ())),
        kwargs=dict(raw.get("kwargs", {})),
        queue=raw.get("queue"),
        missed=MissedPolicy(raw.get("missed", MissedPolicy.LATEST)),
        missed_limit=raw.get("missed_limit", DEFAULT_MISSED_LIMIT),
    )


def _check_options(raw: Mapping[str, Any], label: str) -> None:
    function = raw.get("function")
    if not _is_dotted_name(function):
        _invalid(
            label, "function", function, "the dotted name of a background function"
        )
    queue = raw.get("queue")
    if queue is not None and not (isinstance(queue, str) and is_safe_name(queue)):
        _invalid(label, "queue", queue, "a queue name: letters, digits, '_', '.', '-'")
    missed = raw.get("missed", "latest")
    # A str first: `in` a set would raise TypeError for a list or a dict.
    if not isinstance(missed, str) or missed not in set(MissedPolicy):
        _invalid(label, "missed", missed, "'latest', 'skip' or 'all'")
    limit = raw.get("missed_limit", DEFAULT_MISSED_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        _invalid(label, "missed_limit", limit, "an int of 1 or more")
    args, kwargs = raw.get("args", ()), raw.get("kwargs", {})
    if not isinstance(args, list | tuple):
        _invalid(label, "args", args, "a list")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        _invalid(label, "kwargs", kwargs, "a dict with str keys")
    try:
        encode_arguments(args, kwargs)
    except SerializationError as err:
        raise InvalidCronEntry(f"{label}: {err}", field="args") from err


def _is_dotted_name(value: Any) -> bool:
    """A module path and an attribute, each part a Python identifier. Other
    names can never lead to a function, and some make importlib raise
    ValueError ('.x') or TypeError ('..x') instead of ImportError when the
    checks and the scheduler look them up."""
    if not isinstance(value, str) or "." not in value:
        return False
    return all(part.isidentifier() for part in value.split("."))


def _invalid(label: str, key: str, value: Any, accepted: str) -> NoReturn:
    raise InvalidCronEntry(
        f"{label} has {key} {shown(value)}; use {accepted}.", field=key
    )
