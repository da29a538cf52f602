"""Processes that stand in for worker processes in the supervisor's unit tests.

Each is the target of a spawn-context process, as a worker process is, but sets
up no Django, so it starts in a fraction of the time. It says "ready" on the
connection it is given once its signal handling is in place.
"""

import signal
import sys
import time
from multiprocessing.connection import Connection
from types import FrameType

READY = b'["ready"]'


def waits(ready: Connection, on_sigterm: str) -> None:
    """Wait to be killed. On SIGTERM: "exit" 0 as a worker's graceful stop does,
    or "ignore" it as a worker stuck past its grace period would."""
    if on_sigterm == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, _exit_zero)
    ready.send_bytes(READY)
    time.sleep(60)


def exits(ready: Connection, code: int) -> None:
    """Exit with `code` right after saying "ready"."""
    ready.send_bytes(READY)
    sys.exit(code)


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)
