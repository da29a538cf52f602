"""Django settings for the django-redisjobs side of the benchmark."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "bench-only-not-a-secret")
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_redisjobs", "bench"]
# A database like a real project's; no-op jobs never open a connection.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REDISJOBS = {
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "PREFIX": "bench",
}
# The django.tasks row (bench/systems/ours_tasks.py); Django < 6.0 ignores it.
TASKS = {
    "default": {
        "BACKEND": "django_redisjobs.tasks_backend.RedisJobsBackend",
        "QUEUES": ["default"],
    }
}
