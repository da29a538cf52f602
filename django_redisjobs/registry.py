"""Maps dotted names to background functions.

`@background` registers each function under ``module.qualname``. The worker looks
names read from Redis up here and nowhere else: it never imports a path that came
out of Redis, so a forged job cannot make it import arbitrary code.
"""

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils.module_loading import autodiscover_modules

from .exceptions import UnknownBackgroundFunction
from .job import Job, JobError, JobStatus

#: Told how one attempt of a job ended: the job as claimed, the status the attempt
#: leads to (SUCCEEDED, RETRYING, DEAD or CANCELLED), the return value (None unless
#: SUCCEEDED) and the error (None when SUCCEEDED).
AttemptEnd = Callable[[Job, JobStatus, Any, JobError | None], None]


@dataclass(frozen=True)
class FunctionSpec:
    """What the worker needs to run one background function's jobs."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    backoff_base: timedelta | None = None
    backoff_max: timedelta | None = None
    jitter: bool | None = None
    timeout: timedelta | None = None
    result_ttl: timedelta | None = None
    unique: bool = False
    unique_for: timedelta | None = None
    retry_on: tuple[type[BaseException], ...] = ()
    no_retry_on: tuple[type[BaseException], ...] = field(default=())
    cron: str | None = None  # a cron expression: enqueue on this schedule
    #: Called after each attempt, after the `job_finished` signal; for a failed
    #: attempt from inside the handler of its exception, so receivers that log
    #: see it in ``sys.exc_info()``. The django.tasks backend sends Django's
    #: ``task_finished`` from here.
    on_attempt_end: AttemptEnd | None = None


def dotted_name(func: Callable[..., Any]) -> str:
    """The name a job stores for `func`; raise if `func` is not module-level."""
    qualname = getattr(func, "__qualname__", "")
    module = getattr(func, "__module__", "")
    if not qualname or "." in qualname or "<" in qualname:
        raise UnknownBackgroundFunction(
            f"{func!r} is not a module-level function; background functions must be "
            "defined at the top level of a module so the worker can find them."
        )
    return f"{module}.{qualname}"


class Registry:
    """Background functions known to this process, by dotted name."""

    def __init__(self) -> None:
        self._specs: dict[str, FunctionSpec] = {}
        self._lock = threading.Lock()

    def register(self, spec: FunctionSpec) -> None:
        """Add `spec`; a module reloaded in development replaces its old entry."""
        with self._lock:
            self._specs[spec.name] = spec

    def get(self, name: str) -> FunctionSpec:
        """Return the spec named `name`; raise `UnknownBackgroundFunction` if none."""
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownBackgroundFunction(
                f"No background function is registered as {name!r} in this process; "
                "check that its module is an app's tasks module or is imported at "
                "startup."
            ) from None

    def load(self, name: str) -> FunctionSpec:
        """Like `get`, but import the module that `name` names first if needed.

        For names from settings (cron entries) only: names read from Redis go
        through `get`, so a job hash never makes a process import code.
        """
        if name not in self._specs:
            module_name = name.rpartition(".")[0]
            try:
                importlib.import_module(module_name)
            except ImportError as err:
                raise UnknownBackgroundFunction(
                    f"{name!r} is not a background function: its module "
                    f"{module_name!r} cannot be imported ({err})."
                ) from err
        return self.get(name)

    def specs(self) -> list[FunctionSpec]:
        """Every registered function, by name."""
        with self._lock:
            return [self._specs[name] for name in sorted(self._specs)]

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs


registry = Registry()


def autodiscover(module_names: Iterable[str]) -> None:
    """Import each installed app's modules of these names (``tasks`` by default)."""
    autodiscover_modules(*module_names)
