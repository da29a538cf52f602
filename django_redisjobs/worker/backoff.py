"""Capped exponential waits between tries while Redis does not answer.

The worker's claim loop, its recorder and its renew thread each keep one, so an
outage makes them log once, wait longer each time up to a cap, and log again when
Redis answers.
"""

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Backoff:
    """Waits `first_s`, doubling up to `cap_s`, between failed tries at `what`.

    `reached`, if given, is called when a try succeeds after failures, so another
    loop waiting out its own backoff can retry at once.
    """

    def __init__(
        self,
        what: str,
        first_s: float = 0.1,
        cap_s: float = 5.0,
        reached: Callable[[], None] | None = None,
    ) -> None:
        self.what, self.reached = what, reached
        self.first_s = min(first_s, cap_s)
        self.cap_s, self.next_s = cap_s, self.first_s
        self.failing_since: float | None = None

    def wait(
        self,
        sleep: Callable[[float], object],
        err: BaseException,
        *,
        trace: bool = False,
    ) -> None:
        """After a failed try: log, then `sleep` the next interval (the sleep may
        end early, on a stop). `trace` logs the traceback too: for an error that
        is not an outage, which someone must look at."""
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        if trace:
            logger.error(
                "unexpected error during %s, retry in %.1fs",
                self.what,
                self.next_s,
                exc_info=err,
            )
        else:
            logger.warning(
                "redis unavailable during %s, retry in %.1fs: %s",
                self.what,
                self.next_s,
                err,
            )
        sleep(self.next_s)
        self.next_s = min(self.next_s * 2, self.cap_s)

    def reset(self) -> None:
        """Call after a success: logs the reconnection once after failures."""
        if self.failing_since is not None:
            logger.warning(
                "redis reachable again during %s after %.1fs",
                self.what,
                time.monotonic() - self.failing_since,
            )
            self.failing_since = None
            if self.reached is not None:
                self.reached()
        self.next_s = self.first_s
