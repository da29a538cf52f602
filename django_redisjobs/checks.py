"""System checks for ``settings.REDISJOBS``, and with ``--deploy`` for Redis itself."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from .conf import SETTING_NAME, raw_settings, validate
from .exceptions import RedisJobsConfigurationError, RedisUnavailable
from .queue import get_store

_DURABILITY_IDS = {
    "aof": "redisjobs.W001",
    "eviction": "redisjobs.W002",
    "unknown": "redisjobs.W003",
}


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """One error per invalid REDISJOBS key (ids redisjobs.E001 and up)."""
    return [
        checks.Error(
            f"{SETTING_NAME}[{problem.key!r}] {problem.message}",
            hint=problem.hint,
            id="redisjobs.E001",
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


def register() -> None:
    checks.register(check_settings, "redisjobs")
    checks.register(check_redis_durability, "redisjobs", deploy=True)
