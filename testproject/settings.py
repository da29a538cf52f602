"""Settings for the django-redisjobs example project (the tests use `tests.settings`).

Development settings only. Environment variables:

- ``DJANGO_DEBUG``: ``1``/``true``/``yes``/``on`` enables debug mode (default on).
- ``DJANGO_SECRET_KEY``: overrides the fixed development key.
- ``DJANGO_ALLOWED_HOSTS``: comma-separated host names.
- ``DATABASE_PATH``: path of the SQLite database (default ``db.sqlite3`` here).
- ``REDIS_URL``: Redis server for jobs (default ``redis://127.0.0.1:6379/0``).
- ``REDISJOBS_PREFIX``: key prefix for jobs in Redis (default ``redisjobs``).
"""

import os
from pathlib import Path
from typing import Any

import django

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# The fallback key is public, so it must never reach production.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    "django-insecure-redisjobs-example-project-do-not-use-in-production",
)

DEBUG = _env_bool("DJANGO_DEBUG", default=True)

ALLOWED_HOSTS: list[str] = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_redisjobs",
    "testproject.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"

TEMPLATES: list[dict[str, Any]] = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "testproject.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": Path(os.environ.get("DATABASE_PATH", BASE_DIR / "db.sqlite3")),
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"

STATIC_URL = "static/"
MEDIA_URL = "media/"
MEDIA_ROOT = BASE_DIR / "var" / "media"

# Mail goes to files so the demo's reminder emails can be read after a run.
# Django 6.1 replaced EMAIL_BACKEND and EMAIL_FILE_PATH with MAILERS.
_MAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
_MAIL_DIR = str(BASE_DIR / "var" / "mail")
if django.VERSION >= (6, 1):
    MAILERS = {
        "default": {"BACKEND": _MAIL_BACKEND, "OPTIONS": {"file_path": _MAIL_DIR}}
    }
else:
    EMAIL_BACKEND = _MAIL_BACKEND
    EMAIL_FILE_PATH = _MAIL_DIR
DEFAULT_FROM_EMAIL = "reminders@example.com"

REDISJOBS = {
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    "PREFIX": os.environ.get("REDISJOBS_PREFIX", "redisjobs"),
}

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "concise": {
            "format": "{asctime} {levelname:<7} {name}: {message}",
            "datefmt": "%H:%M:%S",
            "style": "{",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "concise",
        },
    },
    "loggers": {
        "django_redisjobs": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
        },
        "testproject": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
        },
    },
}
