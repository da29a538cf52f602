"""JSON for the console's polling script: counts per queue, and one job's status
and progress. Each is the same bounded read as its page, without the page."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse

from ..exceptions import InvalidJob
from ..job_hash import from_fields
from ..queue import get_store
from .guard import needs, safe_name
from .pages import cells


@needs("view")
def overview_json(
    model_admin: "admin.ModelAdmin[Any]", request: HttpRequest
) -> HttpResponse:
    store = get_store()
    return JsonResponse(
        {
            "queues": [
                {
                    "name": s.name,
                    "paused": s.paused,
                    "counts": {label: n for label, _, n in cells(s)},
                }
                for s in store.summaries(store.known_queues())
            ]
        }
    )


@needs("view")
def job_json(
    model_admin: "admin.ModelAdmin[Any]", request: HttpRequest, queue: str, job_id: str
) -> HttpResponse:
    fields = get_store().job_fields(safe_name(job_id, "Job"), safe_name(queue, "Queue"))
    if not fields:
        return JsonResponse({"error": "no such job"}, status=404)
    try:
        job = from_fields(fields)
    except InvalidJob as err:
        return JsonResponse({"error": str(err)}, status=409)
    return JsonResponse(
        {
            "status": job.status.value,
            "finished": job.status.is_finished,
            "attempts": job.attempts,
            "progress": job.progress,
            "percent": round(job.progress * 100),
            "progress_message": job.progress_message,
        }
    )
