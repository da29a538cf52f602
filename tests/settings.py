"""Settings for the test suite: the example project plus a private PostgreSQL."""

import json
import os
import tempfile

from testproject.settings import *  # noqa: F403
from testproject.settings import DATABASES, INSTALLED_APPS

DATABASES = {
    **DATABASES,
    # A file, not Django's in-memory test database: Django never closes in-memory
    # SQLite connections, so each worker thread's copy would be collected unclosed
    # (a ResourceWarning on Python 3.13), and threads would not share one database.
    "default": {
        **DATABASES["default"],
        "TEST": {
            "NAME": os.path.join(
                tempfile.gettempdir(), f"redisjobs-test-{os.getpid()}.sqlite3"
            )
        },
    },
    # HOST and PORT are set by the django_db_modify_db_settings fixture.
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "redisjobs",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "0",
        # No dependency on "default", so a test may ask for this alias alone.
        "TEST": {"NAME": "test_redisjobs", "DEPENDENCIES": []},
    },
}

# tests/ is an app so its models and jobs load like any app's; worker subprocesses
# import tests/jobs.py through AUTODISCOVER_MODULES (see REDISJOBS_TEST_SETTINGS).
INSTALLED_APPS = [*INSTALLED_APPS, "tests"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Placeholder on a port nothing listens on: tests point it at a server they
# started, with override_settings. A `manage.py runworker` subprocess cannot be
# overridden that way, so its test passes REDISJOBS_TEST_SETTINGS, a JSON object
# whose keys replace these (tests/test_runworker.py).
REDISJOBS = {
    "REDIS_URL": "redis://127.0.0.1:1/0",
    **json.loads(os.environ.get("REDISJOBS_TEST_SETTINGS", "{}")),
}

# django.tasks (Django 6.0+; older versions ignore the setting): the backend under
# test. "default" is what tests/django_tasks.py's tasks are defined with; "once"
# runs a task a single time, as Django's own backends do.
TASKS = {
    "default": {
        "BACKEND": "django_redisjobs.tasks_backend.RedisJobsBackend",
        "QUEUES": ["default", "other"],
    },
    "once": {
        "BACKEND": "django_redisjobs.tasks_backend.RedisJobsBackend",
        "QUEUES": [],
        "OPTIONS": {"MAX_ATTEMPTS": 1},
    },
}
