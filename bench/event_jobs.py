"""Three subscribers of one event, for bench/events.py (no-op bodies)."""

from typing import Any

from django_redisjobs import background
from django_redisjobs.events import subscribe


@subscribe("bench.signup")
@background
def welcome(payload: Any) -> None:
    pass


@subscribe("bench.signup")
@background
def analytics(payload: Any) -> None:
    pass


@subscribe("bench.signup")
@background
def billing(payload: Any) -> None:
    pass
