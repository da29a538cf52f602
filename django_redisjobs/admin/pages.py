"""The console's pages: overview, job list, job detail, find, workers.

Each view reads through `JobStore` (bounded reads only) and hands plain values to
its template; none issues a Redis command of its own.
"""

from typing import Any, TypeAlias

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from ..exceptions import InvalidJob, JobDoesNotExist, SerializationError
from ..job import Job, JobStatus, from_ms, now_epoch_ms
from ..job_hash import from_fields
from ..queue import (
    FILTER_WINDOW,
    JobRow,
    JobState,
    JobStore,
    QueueSummary,
    get_store,
)
from . import chart, present
from .guard import needs, render, safe_name

PER_PAGE = 50
#: The listing states in the order the pages show them.
STATES = [
    JobState.QUEUED,
    JobState.SCHEDULED,
    JobState.ACTIVE,
    JobState.SUCCEEDED,
    JobState.DEAD,
    JobState.CANCELLED,
]
#: The overview's count columns: a label and the listing each count links to.
#: Retrying jobs sit in the scheduled listing, counted apart by their index.
COLUMNS = [
    ("queued", JobState.QUEUED),
    ("scheduled", JobState.SCHEDULED),
    ("retrying", JobState.SCHEDULED),
    ("active", JobState.ACTIVE),
    ("succeeded", JobState.SUCCEEDED),
    ("dead", JobState.DEAD),
    ("cancelled", JobState.CANCELLED),
]
#: Which bulk actions a listing offers, by state.
LIST_ACTIONS = {
    JobState.QUEUED: ["cancel"],
    JobState.SCHEDULED: ["cancel"],
    JobState.ACTIVE: ["cancel"],
    JobState.SUCCEEDED: ["delete"],
    JobState.DEAD: ["retry", "delete"],
    JobState.CANCELLED: ["retry", "delete"],
}
# A string: ModelAdmin is generic only to type checkers.
Admin: TypeAlias = "admin.ModelAdmin[Any]"


def url(model_admin: Admin, name: str, *args: str) -> str:
    opts = model_admin.opts
    return reverse(
        f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}",
        args=args,
    )


@needs("view")
def overview(model_admin: Admin, request: HttpRequest) -> HttpResponse:
    store = get_store()
    queues = store.known_queues()
    now_ms = now_epoch_ms()
    minute, hour = now_ms // 60_000, now_ms // 3_600_000
    server = store.server_info()
    return render(
        model_admin,
        request,
        "overview.html",
        {
            "title": "Jobs in Redis",
            "columns": [label for label, _ in COLUMNS],
            "queues": [(s, cells(s)) for s in store.summaries(queues)],
            "minute_chart": chart.bars_svg(
                store.outcome_counts(queues, "m", minute - 59, 60),
                (minute - 59) * 60_000,
                60_000,
                "Jobs finished and failed per minute, last hour",
            ),
            "hour_chart": chart.bars_svg(
                store.outcome_counts(queues, "h", hour - 23, 24),
                (hour - 23) * 3_600_000,
                3_600_000,
                "Jobs finished and failed per hour, last day",
                "%d %b %H:%M UTC",
            ),
            "legend": chart.legend(),
            "workers": [_worker(w.worker_id, w.fields) for w in store.live_workers()],
            "lost": [(w, from_ms(ms)) for w, ms in store.lost_workers(now_ms)],
            "server": server,
            "used": present.size(server.used_memory),
            "maxmemory": present.size(server.maxmemory) if server.maxmemory else "",
            "problems": store.persistence().problems(),
            "events": store.event_summaries(),
        },
    )


def cells(summary: QueueSummary) -> list[tuple[str, JobState, int]]:
    """The overview's counts of one queue: (label, listing, count) per column."""
    counts = dict(summary.counts)
    counts[JobState.SCHEDULED] = summary.delayed
    return [
        (label, state, summary.retrying if label == "retrying" else counts[state])
        for label, state in COLUMNS
    ]


def _worker(worker_id: str, fields: dict[str, str]) -> dict[str, Any]:
    def number(name: str) -> int:
        value = fields.get(name, "")
        return int(value) if value.lstrip("-").isdigit() else 0

    return {
        "id": worker_id,
        "host": fields.get("hostname", ""),
        "pid": fields.get("pid", ""),
        "queues": fields.get("queues", "").split(","),
        "concurrency": fields.get("concurrency", ""),
        "running": number("held"),
        "succeeded": number("succeeded"),
        "failed": number("dead") + number("retrying"),
        "heartbeat_until": from_ms(number("expires_ms")),
        "started": from_ms(number("started_ms")),
    }


def _state(value: str) -> JobState:
    try:
        return JobState(value)
    except ValueError:
        raise Http404(f"{value!r} is not a job state.") from None


def _page_number(request: HttpRequest) -> int:
    raw = request.GET.get("page", "1")
    return max(int(raw), 1) if raw.isdigit() else 1


@needs("view")
def job_list(
    model_admin: Admin, request: HttpRequest, queue: str, state: str
) -> HttpResponse:
    queue, listed = safe_name(queue, "Queue"), _state(state)
    store = get_store()
    page = _page_number(request)
    offset = (page - 1) * PER_PAGE
    func = request.GET.get("func", "").strip()
    (summary,) = store.summaries([queue])
    looked = None
    if func:
        ids, looked = store.ids_of_function(queue, listed, func)
        total, page_ids = len(ids), ids[offset : offset + PER_PAGE]
    else:
        total = summary.counts[listed]
        page_ids = store.list_ids(queue, listed, offset, PER_PAGE)
    pages = max((total + PER_PAGE - 1) // PER_PAGE, 1)
    return render(
        model_admin,
        request,
        "job_list.html",
        {
            "title": f"{listed.value.capitalize()} jobs in {queue!r}",
            "queue": queue,
            "state": listed,
            "summary": summary,
            "tabs": [(s, summary.counts[s]) for s in STATES],
            "rows": _rows(model_admin, queue, store.rows(page_ids, queue)),
            "func": func,
            "looked": looked,
            "window": FILTER_WINDOW,
            "total": total,
            "page": page,
            "pages": pages,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < pages else None,
            "actions": LIST_ACTIONS[listed],
        },
    )


def _rows(model_admin: Admin, queue: str, rows: list[JobRow]) -> list[dict[str, Any]]:
    """Each row with its link and times as text: a page has 50 rows, and the
    template's url tag and date filter per cell would take most of its time."""
    placeholder = "0" * 32
    link = url(model_admin, "job", queue, placeholder)
    found = []
    for row in rows:
        item: dict[str, Any] = {
            "id": row.job_id,
            "url": link.replace(placeholder, row.job_id),
            "problem": row.problem,
        }
        job = row.job
        if job is not None:
            item.update(
                job=job,
                percent=round(job.progress * 100),
                duration=present.duration(job.started_at, job.finished_at),
                enqueued=present.moment(job.enqueued_at),
                started=present.moment(job.started_at),
                finished=present.moment(job.finished_at),
            )
        found.append(item)
    return found


@needs("view")
def job_detail(
    model_admin: Admin, request: HttpRequest, queue: str, job_id: str
) -> HttpResponse:
    queue, job_id = safe_name(queue, "Queue"), safe_name(job_id, "Job")
    store = get_store()
    fields = store.job_fields(job_id, queue)
    if not fields:
        raise Http404(f"Job {job_id!r} does not exist in queue {queue!r}.")
    job, problem = None, ""
    try:
        job = from_fields(fields)
    except InvalidJob as err:
        problem = str(err)
    return render(
        model_admin,
        request,
        "job_detail.html",
        {
            "title": f"Job {job_id}",
            "queue": queue,
            "job_id": job_id,
            "job": job,
            "problem": problem,
            "fields": [
                (name, value, len(value) > present.FOLD_CHARS)
                for name, value in sorted(fields.items())
            ],
            **(_detail(job) if job else {}),
        },
    )


def _detail(job: Job) -> dict[str, Any]:
    status = job.status
    result = ""
    if status is JobStatus.SUCCEEDED:
        try:
            result = present.pretty_value(job.result)
        except SerializationError:  # a damaged result is shown as stored
            result = job.result_json
    return {
        "args": present.pretty_value(job.args),
        "kwargs": present.pretty_value(job.kwargs),
        "result": result,
        "percent": round(job.progress * 100),
        "duration": present.duration(job.started_at, job.finished_at),
        "history": job.history,
        "can_retry": status
        in (JobStatus.DEAD, JobStatus.CANCELLED, JobStatus.RETRYING),
        "can_cancel": not status.is_finished,
        "can_remove": status.is_finished,
        "state": _listing_of(status),
    }


def _listing_of(status: JobStatus) -> JobState:
    return {
        JobStatus.QUEUED: JobState.QUEUED,
        JobStatus.SCHEDULED: JobState.SCHEDULED,
        JobStatus.RETRYING: JobState.SCHEDULED,
        JobStatus.ACTIVE: JobState.ACTIVE,
        JobStatus.SUCCEEDED: JobState.SUCCEEDED,
        JobStatus.DEAD: JobState.DEAD,
        JobStatus.CANCELLED: JobState.CANCELLED,
    }.get(status, JobState.QUEUED)


@needs("view")
def find_job(model_admin: Admin, request: HttpRequest) -> HttpResponse:
    """Search by exact job id in every queue: its detail page, or 404."""
    job_id = request.GET.get("job_id", "").strip()
    store: JobStore = get_store()
    try:
        queue = store.locate(safe_name(job_id, "Job"))
    except JobDoesNotExist as err:
        raise Http404(str(err)) from err
    return HttpResponseRedirect(url(model_admin, "job", queue, job_id))


@needs("view")
def workers(model_admin: Admin, request: HttpRequest) -> HttpResponse:
    store = get_store()
    live = store.live_workers()
    held: dict[str, list[Any]] = {}
    for item in store.held_jobs(store.known_queues()):
        held.setdefault(item.worker, []).append((item, from_ms(item.lease_deadline_ms)))
    return render(
        model_admin,
        request,
        "workers.html",
        {
            "title": "Workers",
            "workers": [
                (_worker(w.worker_id, w.fields), held.get(w.worker_id, []))
                for w in live
            ],
            "lost": [(w, from_ms(ms)) for w, ms in store.lost_workers(now_epoch_ms())],
        },
    )
