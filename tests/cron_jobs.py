"""Background functions for the cron tests (module level, as the worker requires)."""

from datetime import timedelta

from django_redisjobs import background


@background(queue="cron")
def record(label: str = "") -> str:
    """What settings entries in the cron tests enqueue."""
    return label


@background(max_attempts=1)
def fail(label: str = "") -> None:
    raise ValueError(f"{label} failed")


# Yearly, so the schedulers of other tests (real clock) never fire it; tests step
# an injected clock to New Year instead. Its own queue keeps it out of theirs.
@background(cron="0 0 1 1 *", queue="cron-decorated")
def new_year() -> str:
    return "happy new year"


def plain() -> str:
    """Not decorated here: tests decorate it to check `cron` validation."""
    return "plain"


def needs_argument(value: int) -> int:
    """Not decorated here: a cron entry cannot pass it an argument."""
    return value


@background(queue="cron", priority=5)
def urgent() -> str:
    return "urgent"


@background(
    queue="cron",
    priority=-3,
    max_attempts=2,
    timeout=timedelta(seconds=7),
    result_ttl=timedelta(minutes=3),
)
def configured() -> str:
    return "configured"
