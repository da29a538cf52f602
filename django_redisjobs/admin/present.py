"""How the console shows values: indented JSON, durations, times, byte sizes and
cron expressions in plain words. Pure functions; templates escape what they
return."""

import json
from datetime import datetime, timedelta
from typing import Any

#: A value longer than this is folded (shown under a disclosure) on the pages.
FOLD_CHARS = 400

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
]  # fmt: skip


def pretty_value(value: Any) -> str:
    """A decoded JSON value, indented."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


def duration(start: datetime | None, end: datetime | None) -> str:
    """ "1.25 s", "3 min 4 s" or "" when either end is unknown."""
    if start is None or end is None:
        return ""
    return short_span(end - start)


def moment(value: datetime | None) -> str:
    """A stored time in UTC, to the second; "" when unset."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def short_span(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 0:
        return ""
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def size(count: int) -> str:
    """Bytes in the nearest binary unit: "512 B", "1.5 MiB"."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover - the loop always returns


def cron_in_words(expression: str, zone: str) -> str:
    """A five-field cron expression in plain words, with its zone: "every day at
    03:00, Europe/Berlin". Forms beyond the common ones are quoted as given."""
    fields = expression.split()
    words = _words(fields) if len(fields) == 5 else None
    return f"{words or 'cron ' + repr(expression)}, {zone}"


def _words(fields: list[str]) -> str | None:
    minute, hour, day, month, weekday = fields
    if (
        [day, month] != ["*", "*"]
        and not (day.isdigit() and month == "*" and weekday == "*")
        and not (month.isdigit() and day.isdigit() and weekday == "*")
    ):
        return None
    when = _time_of_day(minute, hour)
    if when is None:
        return None
    if day.isdigit() and month.isdigit():
        return f"every year on {_MONTHS[int(month) - 1]} {int(day)} {when}"
    if day.isdigit():
        return f"every month on day {int(day)} {when}"
    if weekday == "*":
        return when if when.startswith("every") else f"every day {when}"
    names = _weekdays(weekday)
    if names is None:
        return None
    return f"every {names} {when.removeprefix('every ')}".replace(
        f"every {names} minute", f"every minute on {names}"
    )


def _time_of_day(minute: str, hour: str) -> str | None:
    if minute == "*" and hour == "*":
        return "every minute"
    if minute.startswith("*/") and minute[2:].isdigit() and hour == "*":
        return f"every {int(minute[2:])} minutes"
    if minute.isdigit() and hour == "*":
        return f"every hour at minute {int(minute)}"
    if minute.isdigit() and hour.startswith("*/") and hour[2:].isdigit():
        return f"every {int(hour[2:])} hours at minute {int(minute)}"
    if minute.isdigit() and all(h.isdigit() for h in hour.split(",")):
        times = " and ".join(f"{int(h):02d}:{int(minute):02d}" for h in hour.split(","))
        return f"at {times}"
    return None


def _weekdays(weekday: str) -> str | None:
    if weekday in ("1-5", "mon-fri", "MON-FRI"):
        return "weekday"
    names = []
    for part in weekday.split(","):
        if not part.isdigit() or int(part) > 7:
            return None
        names.append(_DAYS[int(part) % 7])
    return " and ".join(names)
