"""System checks for ``settings.REDISJOBS``, and with ``--deploy`` for Redis itself."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from .conf import SETTING_NAME, parse_cron, raw_settings, validate
from .exceptions import (
    RedisJobsConfigurationError,
    RedisUnavailable,
    UnknownBackgroundFunction,
)
from .job import now_epoch_ms
from .queue import get_store
from .registry import registry

_DURABILITY_IDS = {
    "aof": "redisjobs.W001",
    "eviction": "redisjobs.W002",
    "unknown": "redisjobs.W003",
}


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """One error per invalid REDISJOBS key or cron entry (ids redisjobs.E001 and
    up: E002 cron expression, E004 time zone, E005 other cron entry fields)."""
    return [
        checks.Error(
            f"{SETTING_NAME}[{problem.key!r}] {problem.message}",
            hint=problem.hint,
            id=problem.check_id,
        )
        for problem in validate(raw_settings())
    ]


def check_redis_durability(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Deploy only (it talks to Redis): AOF off (W001), an eviction policy that can
    drop job keys (W002), settings Redis would not report or Redis unreachable
    (W003)."""
    if validate(raw_settings()):
        return []  # check_settings reports those; there is no Redis to ask
    try:
        persistence = get_store().persistence()
    except (RedisUnavailable, RedisJobsConfigurationError) as err:
        return [
            checks.Warning(
                f"Could not read Redis's persistence settings: {err}",
                hint="Run the check where Redis is reachable, or check appendonly "
                "and maxmemory-policy on the server yourself.",
                id=_DURABILITY_IDS["unknown"],
            )
        ]
    return [
        checks.Warning(
            problem.message, hint=problem.hint, id=_DURABILITY_IDS[problem.code]
        )
        for problem in persistence.problems()
    ]


def check_redis_access(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Deploy only (it talks to Redis): redisjobs.E006, the Redis user may not run
    a command the app needs (an ACL), or a key or channel under the prefix."""
    if validate(raw_settings()):
        return []
    try:
        refused = get_store().check_access(now_epoch_ms())
    except (RedisUnavailable, RedisJobsConfigurationError):
        return []  # check_redis_durability reports an unreachable Redis
    return [
        checks.Error(
            f"The Redis user may not run a command the app needs: {refusal}",
            hint="Allow the commands listed in docs/scaling.md#acls, on the keys "
            "and channels under REDISJOBS['PREFIX'].",
            id="redisjobs.E006",
        )
        for refusal in refused
    ]


def check_cron_functions(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """redisjobs.E003: a cron entry names no importable background function."""
    raw = raw_settings()
    if not isinstance(raw, dict) or not isinstance(raw.get("CRON"), list | tuple):
        return []
    errors: list[checks.CheckMessage] = []
    for entry in parse_cron(raw["CRON"])[0]:
        try:
            registry.load(entry.function)
        except UnknownBackgroundFunction as err:
            errors.append(
                checks.Error(
                    f"{SETTING_NAME}['CRON'] entry {entry.name!r} names function "
                    f"{entry.function!r}: {err}",
                    hint="Use the dotted name of a module-level function decorated "
                    "with @background.",
                    id="redisjobs.E003",
                )
            )
    return errors


def register() -> None:
    checks.register(check_settings, "redisjobs")
    checks.register(check_cron_functions, "redisjobs")
    checks.register(check_redis_durability, "redisjobs", deploy=True)
    checks.register(check_redis_access, "redisjobs", deploy=True)
