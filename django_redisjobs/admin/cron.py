"""The console's cron page: every entry, in plain words, with its next fire
times and the outcome of the job its last fire time made."""

from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from ..conf import get_settings
from ..cron import CronEntry, slot_job_id
from ..exceptions import UnknownBackgroundFunction
from ..queue import JobStore, get_store
from ..registry import autodiscover, registry
from ..scheduler import cron_entries
from .guard import needs, render
from .present import cron_in_words

NEXT_FIRES = 5
_FORMAT = "%Y-%m-%d %H:%M %Z"


@needs("view")
def cron_page(
    model_admin: "admin.ModelAdmin[Any]", request: HttpRequest
) -> HttpResponse:
    settings = get_settings()
    autodiscover(settings.autodiscover_modules)
    store = get_store()
    now = datetime.now(UTC)
    rows = [_entry(store, entry, now) for entry in cron_entries(settings, registry)]
    return render(
        model_admin, request, "cron.html", {"title": "Cron entries", "entries": rows}
    )


def _entry(store: JobStore, entry: CronEntry, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "entry": entry,
        "words": cron_in_words(entry.expression, entry.timezone),
        "missed": entry.missed.value,
        "next": [],
    }
    moment = now
    for _ in range(NEXT_FIRES):
        moment = entry.schedule.next_after(moment)
        row["next"].append(_local(moment, entry))
    try:
        spec = registry.load(entry.function)
    except UnknownBackgroundFunction as err:
        row["problem"] = str(err)
        return row
    queue = entry.queue or spec.queue or store.settings.default_queue
    row["queue"] = queue
    (state,) = store.cron_states(queue, [entry.name])
    if state.last_fired is not None:
        row["last_fired"] = _local(state.last_fired, entry)
        job_id = slot_job_id(entry.name, state.last_fired)
        (last,) = store.rows([job_id], queue)
        row["last_job_id"] = job_id
        row["last_status"] = last.job.status.value if last.job else "expired"
    return row


def _local(moment: datetime, entry: CronEntry) -> str:
    """The time in the entry's zone, as text: the template's date filter would
    show it in the project's TIME_ZONE instead."""
    return moment.astimezone(entry.schedule.zone).strftime(_FORMAT)
