"""Django settings for `bench/soak.py` and the `runworker` processes it starts.

The soak script sets the ``SOAK_*`` variables; ``bench`` is installed as an app so
that ``bench/soak_jobs.py`` is autodiscovered by the workers.
"""

import os

SECRET_KEY = "soak-only-not-a-secret"  # noqa: S105 - never used outside the soak
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_redisjobs", "bench"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REDISJOBS = {
    "REDIS_URL": os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "PREFIX": os.environ.get("SOAK_PREFIX", "soak"),
    "LEASE_S": float(os.environ.get("SOAK_LEASE_S", "5")),
    "AUTODISCOVER_MODULES": ["soak_jobs"],
    # A job whose worker is killed loses that attempt: allow for several kills.
    "MAX_ATTEMPTS": 10,
    "BACKOFF_BASE_S": 0.5,
    "BACKOFF_MAX_S": 5.0,
}
