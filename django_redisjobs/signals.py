"""Signals sent around a job's life; the sender is the job's function name (str)."""

from django.dispatch import Signal

#: Sent after a job is stored in Redis (in eager mode: before it runs). Arguments:
#: `job`.
job_enqueued = Signal()
#: Sent in the worker right before a job's function runs. Arguments: `job`.
job_started = Signal()
#: Sent in the worker after an attempt ends. Arguments: `job`, `outcome` (a
#: `JobStatus`: succeeded, retrying or dead), `error` (`JobError` or None)
#: and `duration` (timedelta).
job_finished = Signal()
