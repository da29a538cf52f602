"""The console's event page: a stream's newest entries, each with a link to the
job every subscriber got for it (the job id is derived from the event id and the
subscriber, so no index is needed), and the stream's groups with their lag."""

from typing import Any, TypeAlias

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse

from .. import events, serialization
from ..exceptions import SerializationError
from ..job import from_ms
from ..queue import StreamEntry, get_store
from . import present
from .guard import needs, render, safe_name

#: Entries shown, newest first: a bounded XREVRANGE.
SHOWN = 50
Admin: TypeAlias = "admin.ModelAdmin[Any]"


@needs("view")
def event_page(model_admin: Admin, request: HttpRequest, event: str) -> HttpResponse:
    name = safe_name(event, "Event")
    store = get_store()
    summary = next((s for s in store.event_summaries() if s.event == name), None)
    entries = store.recent_events(name, SHOWN)
    if summary is None and not entries:
        raise Http404(f"No event stream {name!r}.")
    subscribers = sorted(
        {g.subscriber for g in (summary.groups if summary else []) if g.subscriber}
        | {s.subscriber for s in events.subscriptions() if s.event == name}
    )
    opts = model_admin.opts
    find = reverse(
        f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_find"
    )
    return render(
        model_admin,
        request,
        "event.html",
        {
            "title": f"Event {name}",
            "event": name,
            "summary": summary,
            "shown": SHOWN,
            "rows": [_row(entry, subscribers, find) for entry in entries],
        },
    )


def _row(entry: StreamEntry, subscribers: list[str], find: str) -> dict[str, Any]:
    fields = entry.fields
    event_id = fields.get("id", "")
    try:
        payload = present.pretty_value(
            serialization.decode(fields.get("payload", ""), "payload")
        )
    except SerializationError:
        payload = fields.get("payload", "")  # shown as stored, escaped
    published = fields.get("published_ms", "")
    return {
        "entry": entry.entry_id,
        "id": event_id,
        "published": from_ms(int(published)) if published.isdigit() else None,
        "payload": payload,
        "jobs": [
            (subscriber, f"{find}?job_id={events.job_id_for(event_id, subscriber)}")
            for subscriber in subscribers
        ]
        if event_id
        else [],
    }
