"""What a worker is asked to do (`WorkerConfig`), and the id it goes by by default."""

import os
import socket
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker runs; `runworker` builds it from its options.

    `queues` are tried in order at each claim; with `weights` (one whole number of
    1 or more per queue), the order is drawn at each claim instead, each place by
    weight among the queues left, so a queue is served first with a probability
    proportional to its weight among the queues that have jobs.
    """

    queues: tuple[str, ...]
    concurrency: int = 4
    prefetch: int = 64
    name: str | None = None
    burst: bool = False
    max_jobs: int | None = None
    scheduler: bool = True
    idle_wait: timedelta = timedelta(seconds=2)
    grace: timedelta = timedelta(seconds=30)
    weights: tuple[int, ...] | None = None
    #: Say at start when Redis may lose jobs (a supervisor's first child only).
    warn_durability: bool = True

    def __post_init__(self) -> None:
        if self.weights is not None and (
            len(self.weights) != len(self.queues) or min(self.weights, default=1) < 1
        ):
            raise ValueError(
                f"weights {self.weights!r} must give each of the queues "
                f"{self.queues!r} a whole number of 1 or more."
            )


def default_worker_id() -> str:
    return f"{socket.gethostname()}.{os.getpid()}.{os.urandom(2).hex()}"
