"""System checks for ``settings.REDISJOBS``."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from .conf import SETTING_NAME, raw_settings, validate


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """One error (redisjobs.E001) per invalid REDISJOBS key."""
    return [
        checks.Error(
            f"{SETTING_NAME}[{problem.key!r}] {problem.message}",
            hint=problem.hint,
            id="redisjobs.E001",
        )
        for problem in validate(raw_settings())
    ]


def register() -> None:
    checks.register(check_settings, "redisjobs")
