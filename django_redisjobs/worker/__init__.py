"""The worker: claims jobs from Redis, runs them, records their outcomes.

One module per step of a job's life in a worker: `claim` (slots, queue order,
the idle hand-over), `run` (executor threads, the event loop, the timeout
watchdog), `record` (writing outcomes), `renew` (leases, heartbeat, scheduler
ticks), `stop` (handing jobs back); the `ledger` holds every held job's state
and `supervision` the rule every thread runs under. `core` wires them into a
`Worker` and describes the path of one job through its threads. Process mode
(`runworker --processes`) is `supervisor`, which starts `child` processes and
records their lost jobs through `child_recovery`.
"""

from .claim import weighted_order
from .config import WorkerConfig, default_worker_id
from .core import Worker
from .ledger import WorkerStats
from .supervisor import Supervisor, SupervisorConfig, install_supervisor_signal_handlers

__all__ = [
    "Supervisor",
    "SupervisorConfig",
    "Worker",
    "WorkerConfig",
    "WorkerStats",
    "default_worker_id",
    "install_supervisor_signal_handlers",
    "weighted_order",
]
