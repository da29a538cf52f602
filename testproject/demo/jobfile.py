"""The list of jobs ``enqueue_demo`` wrote, shared with ``demo_report``."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class EnqueuedJob:
    """One job the demo enqueued; ``rolled_back`` jobs were never written to Redis."""

    id: str
    queue: str
    function: str
    rolled_back: bool = False


def default_path() -> Path:
    """``var/demo_jobs.json`` beside ``manage.py``."""
    return Path(settings.BASE_DIR) / "var" / "demo_jobs.json"


def save(path: Path, jobs: list[EnqueuedJob]) -> None:
    """Write ``jobs`` to ``path``, replacing any earlier list."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"jobs": [asdict(job) for job in jobs]}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def load(path: Path) -> list[EnqueuedJob]:
    """Read the list ``save`` wrote.

    Raises ``OSError`` if the file can't be read, and ``ValueError`` (including
    ``json.JSONDecodeError``) if it doesn't hold a job list.
    """
    payload: Any = json.loads(path.read_text(encoding="utf-8"))
    try:
        return [
            EnqueuedJob(
                id=str(entry["id"]),
                queue=str(entry["queue"]),
                function=str(entry["function"]),
                rolled_back=bool(entry.get("rolled_back", False)),
            )
            for entry in payload["jobs"]
        ]
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{str(path)!r} does not hold a demo job list.") from err
