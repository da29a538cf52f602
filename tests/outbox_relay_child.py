"""A relay process for tests/test_outbox.py that kills itself mid-delivery.

Run as ``python -m tests.outbox_relay_child`` with OUTBOX_CHILD, a JSON object:
the database alias to relay and where its test database is, the batch size, and
after how many Redis writes to die. It dies by SIGKILL right after that write's
reply, before the delivery deletes its rows: the worst moment for a relay.
"""

import json
import os
import signal
from typing import Any

import django
from django.conf import settings


def main() -> None:
    spec = json.loads(os.environ["OUTBOX_CHILD"])
    django.setup()
    # Before the first query: Django's connections read this dict.
    settings.DATABASES[spec["alias"]].update(spec["database"])

    from django_redisjobs.queue import JobStore
    from django_redisjobs.relay import OutboxRelay

    writes = 0
    enqueue = JobStore.enqueue_detailed

    def enqueue_then_die(self: JobStore, *args: Any, **kwargs: Any) -> Any:
        nonlocal writes
        placed = enqueue(self, *args, **kwargs)
        writes += 1
        if writes == spec["die_after_writes"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return placed

    JobStore.enqueue_detailed = enqueue_then_die  # type: ignore[method-assign]
    relay = OutboxRelay([spec["alias"]], batch=spec["batch"])
    relay.sweep(grace=relay.poll * 0)


if __name__ == "__main__":
    main()
