"""Waiting on another thread's or process's observable state, with a deadline."""

import time
from collections.abc import Callable
from typing import Any

import pytest

# Generous: a loaded machine may take seconds to start Django in a subprocess.
DEADLINE_S = 20.0


def wait_until(
    predicate: Callable[[], Any],
    timeout_s: float = DEADLINE_S,
    what: str | Callable[[], str] = "",
) -> Any:
    """Poll `predicate` every 10 ms until it returns something truthy, and return
    that; fail after `timeout_s`, saying `what` was awaited."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            pytest.fail(
                f"Timed out after {timeout_s} s waiting for {said or predicate}."
            )
        time.sleep(0.01)
    return value
