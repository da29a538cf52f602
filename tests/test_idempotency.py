"""`current_job().id` and `.attempt` as idempotency keys for a job's side effects."""

from collections.abc import Iterator

import pytest

from django_redisjobs import JobStatus
from tests import fault_jobs
from tests.conftest import RedisJobs
from tests.faults import fresh_fault_jobs


@pytest.fixture(autouse=True)
def _fault_jobs() -> Iterator[None]:
    with fresh_fault_jobs():
        yield


def test_job_id_keys_a_side_effect_once_across_a_retry(redisjobs: RedisJobs) -> None:
    first = fault_jobs.charge.delay("acct-1", 500)
    second = fault_jobs.charge.delay("acct-1", 700)

    redisjobs.run_worker()

    for handle in (first, second):
        handle.refresh()
        assert handle.status is JobStatus.SUCCEEDED
        assert handle.attempts == 2
        assert fault_jobs.runs[handle.id] == 2
        # The retry saw the same id and knew it was attempt 2.
        assert handle.result == {
            "key": f"charge:{handle.id}",
            "attempt": 2,
            "account": "acct-1",
        }
    # Two jobs, four runs, two charges: one per job id.
    assert fault_jobs.ledger == {f"charge:{first.id}": 500, f"charge:{second.id}": 700}
