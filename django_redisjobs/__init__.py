"""Background jobs for Django on Redis."""

from .context import JobContext, current_job
from .decorators import BackgroundFunction, background
from .exceptions import (
    InvalidCronEntry,
    InvalidJob,
    JobCancelled,
    JobDoesNotExist,
    JobTimeout,
    NoCurrentJob,
    RedisJobsConfigurationError,
    RedisJobsError,
    RedisUnavailable,
    Retry,
    SerializationError,
    UnknownBackgroundFunction,
    WaitTimeout,
    WorkerLost,
)
from .handle import JobHandle
from .job import Attempt, Job, JobError, JobStatus

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "BackgroundFunction",
    "InvalidCronEntry",
    "InvalidJob",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobDoesNotExist",
    "JobError",
    "JobHandle",
    "JobStatus",
    "JobTimeout",
    "NoCurrentJob",
    "RedisJobsConfigurationError",
    "RedisJobsError",
    "RedisUnavailable",
    "Retry",
    "SerializationError",
    "UnknownBackgroundFunction",
    "WaitTimeout",
    "WorkerLost",
    "__version__",
    "background",
    "current_job",
]
