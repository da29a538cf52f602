"""The benchmark's background functions for django-redisjobs (autodiscovered)."""

from django_redisjobs import background

from . import probe


@background
def noop() -> None:
    probe.job_done()


@background
def record_start(sent_ns: int) -> None:
    probe.record_start(sent_ns)
