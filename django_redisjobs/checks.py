"""System checks for ``settings.REDISJOBS``."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from .conf import SETTING_NAME, parse_cron, raw_settings, validate
from .exceptions import UnknownBackgroundFunction
from .registry import registry


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
