"""The only reader of ``settings.REDISJOBS``: defaults, validation, typed access.

`get_settings()` validates once and caches a frozen `Settings`; the cache is dropped
when Django's `setting_changed` fires (wired in `apps.py`), so `override_settings`
works in tests.
"""

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings

from . import redis_options, sentinel
from .cron import CronEntry, parse_entry
from .exceptions import InvalidCronEntry, RedisJobsConfigurationError, shown
from .job import MAX_ATTEMPTS_LIMIT, MAX_DURATION
from .keys import is_safe_name
from .redis_urls import url_problem
from .sentinel import SentinelSettings

SETTING_NAME = "REDISJOBS"

DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,
    "CACHE_ALIAS": None,
    "SENTINEL": None,
    "REDIS_OPTIONS": {},
    "PREFIX": "redisjobs",
    "DEFAULT_QUEUE": "default",
    "MAX_ATTEMPTS": 3,
    "BACKOFF_BASE_S": 2.0,
    "BACKOFF_MAX_S": 3600.0,
    "BACKOFF_JITTER": True,
    "TIMEOUT_S": None,
    "RESULT_TTL_S": 86400,
    "DEAD_TTL_S": 604800,
    "LEASE_S": 30.0,
    "ON_COMMIT": True,
    "OUTBOX": False,
    "OUTBOX_DATABASES": ["default"],
    "EAGER": False,
    "AUTODISCOVER_MODULES": ["tasks"],
    "CRON": [],
    "EVENT_MAXLEN": 1_000_000,
    "DURABILITY_WARNING": True,
}

# Used when neither REDIS_URL nor CACHE_ALIAS is given.
FALLBACK_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Problem:
    """One invalid setting: which key, what is wrong, and how to fix it."""

    key: str
    message: str
    hint: str
    check_id: str = "redisjobs.E001"


@dataclass(frozen=True)
class Settings:
    """Validated ``REDISJOBS`` values."""

    redis_url: str | None
    cache_alias: str | None
    sentinel: SentinelSettings | None = None
    redis_options: Mapping[str, Any] = field(default_factory=dict)
    prefix: str = "redisjobs"
    default_queue: str = "default"
    max_attempts: int = 3
    backoff_base: timedelta = timedelta(seconds=2)
    backoff_max: timedelta = timedelta(hours=1)
    backoff_jitter: bool = True
    timeout: timedelta | None = None
    result_ttl: timedelta = timedelta(days=1)
    dead_ttl: timedelta = timedelta(days=7)
    lease: timedelta = timedelta(seconds=30)
    on_commit: bool = True
    outbox: bool = False
    outbox_databases: tuple[str, ...] = ("default",)
    eager: bool = False
    autodiscover_modules: tuple[str, ...] = ("tasks",)
    cron: tuple[CronEntry, ...] = ()
    event_maxlen: int = 1_000_000
    durability_warning: bool = True
    #: Django's TIME_ZONE: the zone of cron entries that name none.
    time_zone: str = "UTC"


# Durations follow the rules of job options (validation.py): whole ms are
# stored, so less than 1 ms would read as 0 ("not set", no lease); at most
# MAX_DURATION keeps every moment they lead to within datetime's range.
_MIN_S = 0.001
_MAX_S = MAX_DURATION.total_seconds()
_SECONDS = f"a number of seconds from {_MIN_S} to {_MAX_S:.0f} (about a century)"


def _seconds_in_range(value: Any) -> bool:
    # Comparisons also refuse nan, inf and ints too large for a float.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and _MIN_S <= value <= _MAX_S
    )


def _attempts(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 1 <= value <= MAX_ATTEMPTS_LIMIT
    )


def _databases() -> Any:
    return getattr(django_settings, "DATABASES", {})


def _optional_str(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(value))


def _safe_name(value: Any) -> bool:
    return isinstance(value, str) and is_safe_name(value)


def _str_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "REDIS_URL": (_optional_str, "a redis:// or rediss:// URL string, or None"),
    "CACHE_ALIAS": (_optional_str, "the alias of a django-redis cache, or None"),
    "SENTINEL": (
        lambda v: v is None or isinstance(v, dict),
        "None, or a dict with SERVICE, NODES and optionally USERNAME, PASSWORD, DB",
    ),
    "REDIS_OPTIONS": (
        lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
        "a dict of redis-py options by their str names, such as {'socket_timeout': 10}",
    ),
    "PREFIX": (_safe_name, "letters, digits, '_', '.' and '-' only"),
    "DEFAULT_QUEUE": (_safe_name, "letters, digits, '_', '.' and '-' only"),
    "MAX_ATTEMPTS": (_attempts, f"an int from 1 to {MAX_ATTEMPTS_LIMIT}"),
    "BACKOFF_BASE_S": (_seconds_in_range, _SECONDS),
    "BACKOFF_MAX_S": (_seconds_in_range, _SECONDS),
    "BACKOFF_JITTER": (lambda v: isinstance(v, bool), "True or False"),
    "TIMEOUT_S": (
        lambda v: v is None or _seconds_in_range(v),
        f"{_SECONDS}, or None for no limit",
    ),
    "RESULT_TTL_S": (_seconds_in_range, _SECONDS),
    "DEAD_TTL_S": (_seconds_in_range, _SECONDS),
    "LEASE_S": (_seconds_in_range, _SECONDS),
    "ON_COMMIT": (lambda v: isinstance(v, bool), "True or False"),
    "OUTBOX": (lambda v: isinstance(v, bool), "True or False"),
    "OUTBOX_DATABASES": (
        lambda v: _str_list(v) and bool(v) and all(a in _databases() for a in v),
        "a non-empty list of aliases from DATABASES, such as ['default']",
    ),
    "EAGER": (lambda v: isinstance(v, bool), "True or False"),
    "AUTODISCOVER_MODULES": (_str_list, "a list of module names such as ['tasks']"),
    "CRON": (lambda v: isinstance(v, list | tuple), "a list of cron entry dicts"),
    "EVENT_MAXLEN": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "a whole number of 1 or more",
    ),
    "DURABILITY_WARNING": (lambda v: isinstance(v, bool), "True or False"),
}


def check_value(key: str, value: Any) -> str | None:
    """None when `value` is valid for the REDISJOBS key `key`, else a hint naming
    the accepted values: the rule `validate` applies, for settings elsewhere that
    mirror a REDISJOBS key (a django.tasks backend's OPTIONS)."""
    is_valid, accepted = _CHECKS[key]
    return None if is_valid(value) else f"Use {accepted}."


# System check ids of cron entry problems, by the entry key at fault; E003 (unknown
# function) comes from checks.py, which can look functions up.
_CRON_CHECK_IDS = {"schedule": "redisjobs.E002", "timezone": "redisjobs.E004"}
_CRON_HINT = (
    "Each entry is a dict with 'name', 'function' and 'schedule', and optionally "
    "'args', 'kwargs', 'queue', 'timezone', 'missed' and 'missed_limit'; see "
    "docs/cron.md."
)


def validate(raw: Any) -> list[Problem]:
    """Return every problem with `raw` (the REDISJOBS value); empty when valid."""
    if not isinstance(raw, dict):
        return [Problem(SETTING_NAME, f"is {shown(raw)}, not a dict.", "Use a dict.")]
    known = f"Known keys: {', '.join(sorted(DEFAULTS))}."
    unknown = set(raw) - set(DEFAULTS)
    # Keys of other types would not sort among str keys, nor read as a name.
    problems = [
        Problem(SETTING_NAME, f"has the key {shown(key)}, which is not a str.", known)
        for key in sorted(unknown, key=shown)
        if not isinstance(key, str)
    ]
    problems += [
        Problem(key, f"is not a known key (value {shown(raw[key])}).", known)
        for key in sorted(k for k in unknown if isinstance(k, str))
    ]
    for key, (is_valid, accepted) in _CHECKS.items():
        if key in raw and not is_valid(raw[key]):
            problems.append(Problem(key, f"is {shown(raw[key])}.", f"Use {accepted}."))
    url = raw.get("REDIS_URL")
    if isinstance(url, str) and url and (bad_url := url_problem(url)):
        problems.append(Problem("REDIS_URL", bad_url.message, bad_url.hint))
    options = raw.get("REDIS_OPTIONS")
    if isinstance(options, dict) and all(isinstance(k, str) for k in options):
        problems += [
            Problem("REDIS_OPTIONS", text, "See docs/settings.md#redis_options.")
            for text in redis_options.problems(options)
        ]
    problems += [
        Problem("SENTINEL", text, "See docs/scaling.md#sentinel.")
        for text in sentinel.problems(raw.get("SENTINEL"))
    ]
    if raw.get("SENTINEL") is not None and (
        raw.get("REDIS_URL") or raw.get("CACHE_ALIAS")
    ):
        problems.append(
            Problem(
                "SENTINEL",
                "is set together with REDIS_URL or CACHE_ALIAS.",
                "Name Redis once: the sentinels give the primary's address.",
            )
        )
    if raw.get("REDIS_URL") and raw.get("CACHE_ALIAS"):
        problems.append(
            Problem(
                "CACHE_ALIAS",
                "is set together with REDIS_URL.",
                "Name Redis once: either REDIS_URL or CACHE_ALIAS.",
            )
        )
    if isinstance(raw.get("CRON"), list | tuple):
        problems.extend(_cron_problems(raw["CRON"]))
    return problems


def time_zone() -> str:
    """Django's TIME_ZONE, the default zone of cron entries (UTC when None)."""
    return getattr(django_settings, "TIME_ZONE", None) or "UTC"


def parse_cron(raw_entries: Any) -> tuple[list[CronEntry], list[InvalidCronEntry]]:
    """Parse ``REDISJOBS["CRON"]``: the valid entries and an error per invalid one."""
    entries: list[CronEntry] = []
    errors: list[InvalidCronEntry] = []
    names: set[str] = set()
    for raw in raw_entries:
        try:
            entry = parse_entry(raw, default_timezone=time_zone())
        except InvalidCronEntry as err:
            errors.append(err)
            continue
        if entry.name in names:
            errors.append(
                InvalidCronEntry(
                    f"Cron entry {entry.name!r} appears more than once; names "
                    "identify fire times and must be unique.",
                    field="name",
                )
            )
            continue
        names.add(entry.name)
        entries.append(entry)
    return entries, errors


def _cron_problems(raw_entries: Any) -> list[Problem]:
    return [
        Problem(
            "CRON",
            f"has an invalid entry: {err}",
            _CRON_HINT,
            _CRON_CHECK_IDS.get(err.field, "redisjobs.E005"),
        )
        for err in parse_cron(raw_entries)[1]
    ]


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _build(raw: dict[str, Any]) -> Settings:
    values = {**DEFAULTS, **raw}
    redis_url = values["REDIS_URL"]
    if not redis_url and not values["CACHE_ALIAS"] and values["SENTINEL"] is None:
        redis_url = FALLBACK_REDIS_URL
    timeout_s = values["TIMEOUT_S"]
    return Settings(
        redis_url=redis_url,
        cache_alias=values["CACHE_ALIAS"],
        sentinel=sentinel.parse(values["SENTINEL"]),
        redis_options=dict(values["REDIS_OPTIONS"]),
        prefix=values["PREFIX"],
        default_queue=values["DEFAULT_QUEUE"],
        max_attempts=values["MAX_ATTEMPTS"],
        backoff_base=_seconds(values["BACKOFF_BASE_S"]),
        backoff_max=_seconds(values["BACKOFF_MAX_S"]),
        backoff_jitter=values["BACKOFF_JITTER"],
        timeout=_seconds(timeout_s) if timeout_s is not None else None,
        result_ttl=_seconds(values["RESULT_TTL_S"]),
        dead_ttl=_seconds(values["DEAD_TTL_S"]),
        lease=_seconds(values["LEASE_S"]),
        on_commit=values["ON_COMMIT"],
        outbox=values["OUTBOX"],
        outbox_databases=tuple(values["OUTBOX_DATABASES"]),
        eager=values["EAGER"],
        autodiscover_modules=tuple(values["AUTODISCOVER_MODULES"]),
        cron=tuple(parse_cron(values["CRON"])[0]),
        event_maxlen=values["EVENT_MAXLEN"],
        durability_warning=values["DURABILITY_WARNING"],
        time_zone=time_zone(),
    )


def raw_settings() -> Any:
    """The REDISJOBS value as the project set it ({} when absent)."""
    return getattr(django_settings, SETTING_NAME, {})


@functools.cache
def get_settings() -> Settings:
    """Return the validated settings; raise `RedisJobsConfigurationError` if invalid."""
    raw = raw_settings()
    problems = validate(raw)
    if problems:
        first = problems[0]
        raise RedisJobsConfigurationError(
            f"{SETTING_NAME}[{first.key!r}] {first.message} {first.hint}"
        )
    return _build(raw)


def clear_cache(*, setting: str, **kwargs: Any) -> None:
    """`setting_changed` receiver: forget cached settings when REDISJOBS (or the
    TIME_ZONE of cron entries) changes."""
    if setting in (SETTING_NAME, "TIME_ZONE"):
        get_settings.cache_clear()
