"""An unmanaged placeholder model: no table, only an entry in the admin index and
the standard permissions the console checks (view, change, delete)."""

from django.db import models


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
