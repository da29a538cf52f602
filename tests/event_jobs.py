"""Subscribers for tests/test_events.py: a sign-up fan-out on two queues, and a
late subscriber that starts from the whole stream."""

import threading
from collections import Counter
from typing import Any

from django_redisjobs import background, current_job
from django_redisjobs.events import subscribe

_lock = threading.Lock()
runs: Counter[tuple[str, str]] = Counter()  # (subscriber, job id) -> runs


def _record(subscriber: str) -> None:
    with _lock:
        runs[(subscriber, current_job().id)] += 1


@subscribe("user.registered")
@background
def send_welcome(payload: dict[str, Any]) -> int:
    _record("send_welcome")
    return int(payload["user_id"])


@subscribe("user.registered")
@background(queue="other")
def update_analytics(payload: dict[str, Any]) -> None:
    _record("update_analytics")


@subscribe("user.registered")
@background(queue="other")
def notify_billing(payload: dict[str, Any]) -> None:
    _record("notify_billing")


@subscribe("invoice.sent", start="all")
@background
def archive_invoice(payload: Any) -> Any:
    return payload


@subscribe("invoice.sent")
@background
def count_invoice(payload: Any) -> Any:
    return payload
