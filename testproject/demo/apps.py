from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The example project's demo app; its ``tasks.py`` is found by the worker."""

    name = "testproject.demo"
    label = "demo"
    verbose_name = "django-redisjobs demo"
