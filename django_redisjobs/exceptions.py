"""The error hierarchy: every failure the app reports is one of these, and
`shown`, which puts any value into their messages."""

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured


def shown(value: object, limit: int = 200) -> str:
    """``repr(value)`` for an error message, cut to `limit` characters.

    Building the message must not fail in its turn: Python refuses to write an
    int of more than 4,300 digits as text, and a ``__repr__`` of one's own may
    raise; those show as a placeholder instead.
    """
    if isinstance(value, int) and value.bit_length() > 14_000:
        return f"<an int of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except Exception:
        return f"<a {type(value).__name__} that cannot be shown>"
    return text if len(text) <= limit else f"{text[:limit]}..."


class RedisJobsError(Exception):
    """Base class of the app's errors; never raised directly."""


class JobDoesNotExist(RedisJobsError):
    """Raised when a job id names no job hash (never stored, expired or deleted)."""


class UnknownBackgroundFunction(RedisJobsError):
    """Raised when a name is not a registered, module-level background function."""


class SerializationError(RedisJobsError):
    """Raised when arguments or a result do not survive a JSON round trip."""


class InvalidJob(RedisJobsError):
    """Raised for invalid job fields: bad options at enqueue, or a corrupt job hash."""


class RedisUnavailable(RedisJobsError):
    """Raised when Redis cannot be reached, or refuses a write, for a job."""


class WaitTimeout(RedisJobsError, TimeoutError):
    """Raised when `JobHandle.wait()` runs out of time before the job finishes."""


class WorkerCrashed(RedisJobsError):
    """Raised by `Worker.run()` when one of the worker's threads died unexpectedly."""


class WorkerLost(RedisJobsError):
    """Names a lost attempt in its error record (``django_redisjobs.WorkerLost``):
    its worker died or stopped renewing the lease. Recorded, never raised, so
    that the path a django.tasks `TaskError` carries imports to a class."""


class JobTimeout(RedisJobsError):
    """Raised inside a job that ran past its timeout."""


class Retry(RedisJobsError):  # noqa: N818 - job code raises it as a request, not an error
    """Raised by job code to ask for another attempt, optionally after `delay`."""

    def __init__(self, delay: timedelta | None = None, reason: str = "") -> None:
        self.delay = delay
        self.reason = reason
        super().__init__(reason or "Retry requested.")


class JobCancelled(RedisJobsError):  # noqa: N818 - job code raises it to end as cancelled
    """Raised by job code to end its job as cancelled, e.g. once `is_cancelled()`."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or "The job was cancelled on request.")


class RedisJobsConfigurationError(ImproperlyConfigured):
    """Raised when `settings.REDISJOBS` holds an invalid value."""


class NoCurrentJob(RedisJobsError, LookupError):
    """Raised by `current_job()` when called outside a running job."""


class InvalidCronEntry(RedisJobsConfigurationError):
    """Raised for a cron entry with a bad expression, time zone or option."""

    def __init__(self, message: str, *, field: str) -> None:
        #: The entry key at fault ("schedule", "timezone", ...); "" for the whole.
        self.field = field
        super().__init__(message)


def django_tasks_missing() -> ImportError:
    """What the django.tasks modules raise on a Django without django.tasks."""
    import django

    return ImportError(
        "django_redisjobs.tasks_backend needs Django 6.0 or newer (django.tasks); "
        f"this is Django {django.get_version()}. The rest of django_redisjobs "
        "works without it."
    )
