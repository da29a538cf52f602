"""Reading a job hash back: every field lands in its own attribute."""

from datetime import UTC, datetime, timedelta

import pytest

from django_redisjobs.exceptions import InvalidJob
from django_redisjobs.job import Job, JobError, JobStatus
from django_redisjobs.job_hash import from_fields

FULL_HASH = {
    "id": "j1",
    "func": "tests.jobs.add",
    "queue": "q",
    "args": "[1, 2]",
    "kwargs": '{"c": 3}',
    "status": "retrying",
    "priority": "5",
    "attempts": "2",
    "max_attempts": "4",
    "timeout_ms": "1500",
    "result_ttl_ms": "60000",
    "enqueued_ms": "1000",
    "run_at_ms": "2000",
    "started_ms": "3000",
    "finished_ms": "4000",
    "worker": "w1",
    "result": "7",
    "error_class": "ValueError",
    "error_message": "bad",
    "traceback": "Traceback ...",
    "progress": "0.5",
    "lost": "1",
    "cancel_requested": "1",
    "unique_key": "k",
    "unique_until_ms": "5000",
}


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_from_fields_builds_the_job_the_constructor_would() -> None:
    # Guards the positional fast path in from_fields against Job's field order.
    assert from_fields(FULL_HASH) == Job(
        id="j1",
        func="tests.jobs.add",
        queue="q",
        args=[1, 2],
        kwargs={"c": 3},
        status=JobStatus.RETRYING,
        priority=5,
        attempts=2,
        max_attempts=4,
        timeout=timedelta(milliseconds=1500),
        result_ttl=timedelta(seconds=60),
        enqueued_at=at(1000),
        run_at=at(2000),
        started_at=at(3000),
        finished_at=at(4000),
        worker="w1",
        result_json="7",
        error=JobError("ValueError", "bad", "Traceback ..."),
        progress=0.5,
        lost=1,
        cancel_requested=True,
        unique_key="k",
        unique_until=at(5000),
    )


def test_a_job_from_fields_is_frozen() -> None:
    job = from_fields(FULL_HASH)
    with pytest.raises(AttributeError):
        job.status = JobStatus.QUEUED  # type: ignore[misc]


def test_from_fields_names_a_missing_field() -> None:
    fields = dict(FULL_HASH)
    del fields["func"]
    with pytest.raises(InvalidJob, match="'func'"):
        from_fields(fields)


DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("args", DEEP),
        ("kwargs", '{"a": ' + DEEP + "}"),
        ("args", "{not json"),
        ("args", '{"a": 1}'),
        ("kwargs", "[1]"),
        ("status", "sleeping"),
        ("priority", "high"),
        ("attempts", "9" * 5_000),
        ("max_attempts", ""),
        ("timeout_ms", "100000000000000000000"),
        ("result_ttl_ms", "-100000000000000000000"),
        ("enqueued_ms", "100000000000000000000"),
        ("run_at_ms", "-100000000000000000000"),
        ("started_ms", "1000000000000000"),
        ("finished_ms", "253402300800000"),
        ("unique_until_ms", "1e3"),
        ("progress", "half"),
        ("lost", "1.5"),
    ],
)
def test_from_fields_names_the_bad_field_whatever_it_holds(
    field: str, value: str
) -> None:
    with pytest.raises(InvalidJob, match=f"^Job 'j1' has a corrupt field '{field}'"):
        from_fields({**FULL_HASH, field: value})


@pytest.mark.parametrize("field", ["id", "queue", "args", "kwargs", "status"])
def test_from_fields_names_each_required_field_that_is_missing(field: str) -> None:
    fields = {name: v for name, v in FULL_HASH.items() if name != field}
    with pytest.raises(InvalidJob, match=f"has no '{field}' field in Redis"):
        from_fields(fields)
