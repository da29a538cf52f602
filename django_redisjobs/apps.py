import importlib
import importlib.util

from django.apps import AppConfig
from django.core.signals import setting_changed


class RedisJobsConfig(AppConfig):
    name = "django_redisjobs"
    verbose_name = "Redis jobs"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks, conf, connection

        checks.register()
        setting_changed.connect(conf.clear_cache, dispatch_uid="redisjobs-conf")
        setting_changed.connect(
            connection.close_all, dispatch_uid="redisjobs-connection"
        )
        # Django registers its tasks checks (each backend's check()) only when
        # django.tasks is imported, which a project may never do before running
        # checks. Django 5.2 has no django.tasks: nothing to register there.
        if importlib.util.find_spec("django.tasks") is not None:
            importlib.import_module("django.tasks")
