"""The operator's console in the Django admin: pages over the live job hashes in
Redis, and actions through `JobStore`. Django's admin autodiscovery imports this
package, which registers the placeholder model with the default admin site."""

from django.contrib import admin

from ..models import JobConsole
from .console import ConsoleAdmin

admin.site.register(JobConsole, ConsoleAdmin)
