"""The app's models: the outbox table, where jobs wait for their transaction's
commit to be relayed to Redis (``REDISJOBS["OUTBOX"]``; see docs/transactions.md),
and an unmanaged placeholder that gives the admin console its entry and its
permissions."""

from django.db import models


class OutboxEntry(models.Model):
    """A job written in the caller's transaction, not yet in Redis.

    The primary key is the job's id, so relaying a row twice (a relay that died
    after the Redis write and before the delete) stores the job once: the enqueue
    script keeps the first write of an id. `fields` holds the job's hash fields
    as enqueue writes them (JSON), so the relay needs neither the function nor
    its options.
    """

    id = models.CharField(max_length=32, primary_key=True)
    queue = models.CharField(max_length=200)
    fields = models.TextField()
    at_front = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "redisjobs_outbox"
        verbose_name = "outbox entry"
        verbose_name_plural = "outbox entries"
        ordering = ("created_at", "id")
        # Rows are written and deleted by the app only; no admin permissions.
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.id} ({self.queue})"


class JobConsole(models.Model):
    """Stands for the jobs in Redis in the admin and in permissions.

    ``view`` opens the console's pages; ``change`` allows retry, cancel, pause,
    resume and running a cron entry now; ``delete`` allows deleting finished jobs,
    purging dead ones and emptying a queue. Nothing is ever stored in the
    database: the jobs live in Redis.
    """

    class Meta:
        managed = False
        default_permissions = ("view", "change", "delete")
        verbose_name = "job"
        verbose_name_plural = "jobs"

    def __str__(self) -> str:
        return "jobs in Redis"
