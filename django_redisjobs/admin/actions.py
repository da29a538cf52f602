"""The console's actions: each a POST with CSRF that first shows a confirmation
page (as the admin's delete does), then calls one `JobStore` method and reports
what happened with the messages framework."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.utils.http import url_has_allowed_host_and_scheme

from ..conf import get_settings
from ..exceptions import UnknownBackgroundFunction
from ..job import now_epoch_ms
from ..queue import Cancelled, JobStore, get_store
from ..queue.operations import BULK_LIMIT
from ..registry import autodiscover, registry
from ..scheduler import cron_entries, run_entry_now
from .guard import needs, render, safe_name
from .pages import url


class Refused(Exception):
    """An action that cannot be done as asked; its message is shown as an error."""


@dataclass(frozen=True)
class Target:
    """What an action acts on: jobs of a queue, a whole queue, or a cron entry."""

    queue: str = ""
    job_ids: tuple[str, ...] = ()
    entry: str = ""


@dataclass(frozen=True)
class Action:
    label: str
    permission: str  # "change" or "delete"
    scope: str  # "jobs", "queue" or "cron"
    explain: str  # what confirming does, in words
    run: Callable[[JobStore, Target], str]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _sentence(parts: Sequence[str]) -> str:
    said = [p for p in parts if p]
    return "; ".join(said) + "." if said else "Nothing to do."


def _retry(store: JobStore, target: Target) -> str:
    codes = store.retry(target.job_ids, target.queue, now_epoch_ms())
    kept, gone = codes.count(0), codes.count(-1)
    return _sentence(
        [
            f"{_count(codes.count(1), 'job')} retried",
            f"{kept} {'was' if kept == 1 else 'were'} not dead, cancelled or "
            "retrying any more"
            if kept
            else "",
            f"{gone} no longer existed" if gone else "",
        ]
    )


def _cancel(store: JobStore, target: Target) -> str:
    found = store.cancel_many(target.job_ids, target.queue, now_epoch_ms())
    asked = found.count(Cancelled.REQUESTED)
    ended = found.count(Cancelled.ALREADY_FINISHED)
    return _sentence(
        [
            f"{_count(found.count(Cancelled.ENDED), 'job')} cancelled",
            f"{_count(asked, 'running job')} asked to stop" if asked else "",
            f"{ended} had already ended" if ended else "",
            f"{found.count(None)} no longer existed" if None in found else "",
        ]
    )


def _delete(store: JobStore, target: Target) -> str:
    codes = store.delete(target.job_ids, target.queue)
    kept = codes.count(0)
    return _sentence(
        [
            f"{_count(codes.count(1), 'job')} deleted",
            f"{kept} had not ended and {'was' if kept == 1 else 'were'} kept"
            if kept
            else "",
            f"{codes.count(-1)} no longer existed" if -1 in codes else "",
        ]
    )


def _bulk(done: int, noun: str, verb: str) -> str:
    more = " More remain: run it again." if done >= BULK_LIMIT else ""
    return f"{_count(done, noun)} {verb}.{more}"


def _run_cron(store: JobStore, target: Target) -> str:
    settings = get_settings()
    autodiscover(settings.autodiscover_modules)
    entries = {e.name: e for e in cron_entries(settings, registry)}
    if target.entry not in entries:
        raise Http404(f"There is no cron entry {target.entry!r}.")
    try:
        job_id = run_entry_now(entries[target.entry], registry, store, now_epoch_ms())
    except UnknownBackgroundFunction as err:
        raise Refused(str(err)) from err
    return (
        f"Cron entry {target.entry!r} enqueued job {job_id}; its schedule is unchanged."
    )


ACTIONS: dict[str, Action] = {
    "retry": Action(
        "Retry",
        "change",
        "jobs",
        "Each dead, cancelled or retrying job is queued again under the same id, "
        "its attempt count from 0, its history kept. Others are left as they are.",
        _retry,
    ),
    "cancel": Action(
        "Cancel",
        "change",
        "jobs",
        "Waiting jobs end cancelled now; running ones are asked to stop (their "
        "code must honour it). Ended jobs are left as they are.",
        _cancel,
    ),
    "delete": Action(
        "Delete",
        "delete",
        "jobs",
        "Ended jobs (succeeded, dead, cancelled) are deleted from Redis, result "
        "and error included. Waiting and running jobs are kept.",
        _delete,
    ),
    "retry_dead": Action(
        "Retry every dead job",
        "change",
        "queue",
        f"Every dead job of the queue (up to {BULK_LIMIT} in one go) is queued "
        "again under its id.",
        lambda s, t: _bulk(
            s.retry_dead(t.queue, now_epoch_ms()), "dead job", "retried"
        ),
    ),
    "purge_dead": Action(
        "Purge dead jobs",
        "delete",
        "queue",
        f"Every dead job of the queue (up to {BULK_LIMIT} in one go) is deleted "
        "from Redis, with its error and traceback.",
        lambda s, t: _bulk(s.purge_dead(t.queue), "dead job", "deleted"),
    ),
    "empty_ready": Action(
        "Empty ready jobs",
        "delete",
        "queue",
        f"Every ready job of the queue (up to {BULK_LIMIT} in one go) is deleted "
        "without running. Scheduled, retrying and running jobs stay.",
        lambda s, t: _bulk(s.empty_ready(t.queue), "ready job", "deleted"),
    ),
    "pause": Action(
        "Pause",
        "change",
        "queue",
        "Workers stop claiming the queue's jobs within a second; the queue still "
        "accepts new jobs, and running ones finish.",
        lambda s, t: (
            f"Queue {t.queue!r} paused."
            if s.pause(t.queue)
            else f"Queue {t.queue!r} was already paused."
        ),
    ),
    "resume": Action(
        "Resume",
        "change",
        "queue",
        "Workers claim the queue's jobs again at once.",
        lambda s, t: (
            f"Queue {t.queue!r} resumed."
            if s.resume(t.queue)
            else f"Queue {t.queue!r} was not paused."
        ),
    ),
    "run_cron": Action(
        "Run now",
        "change",
        "cron",
        "One extra job of the entry is enqueued now; its schedule does not change.",
        _run_cron,
    ),
}


@needs("view")
def act(
    model_admin: "admin.ModelAdmin[Any]", request: HttpRequest, name: str
) -> HttpResponse:
    """Confirm, then run, the action `name` on the target the POST names."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    action = ACTIONS.get(name)
    if action is None:
        raise Http404(f"There is no action {name!r}.")
    allowed = (
        model_admin.has_change_permission
        if action.permission == "change"
        else model_admin.has_delete_permission
    )
    if not allowed(request):
        raise PermissionDenied
    target = _target(request, action)
    back = _next(request, model_admin)
    if action.scope == "jobs" and not target.job_ids:
        messages.warning(request, "No jobs were selected; nothing was done.")
        return HttpResponseRedirect(back)
    if request.POST.get("confirm") != "yes":
        return render(
            model_admin,
            request,
            "confirm.html",
            {
                "title": f"{action.label}?",
                "action": action,
                "name": name,
                "target": target,
                "next": back,
            },
        )
    try:
        messages.success(request, action.run(get_store(), target))
    except Refused as err:
        messages.error(request, str(err))
    return HttpResponseRedirect(back)


def _target(request: HttpRequest, action: Action) -> Target:
    post = request.POST
    if action.scope == "cron":
        return Target(entry=post.get("entry", ""))
    queue = safe_name(post.get("queue", ""), "Queue")
    ids = tuple(safe_name(i, "Job") for i in post.getlist("ids") if i)
    return Target(queue, ids if action.scope == "jobs" else ())


def _next(request: HttpRequest, model_admin: "admin.ModelAdmin[Any]") -> str:
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return url(model_admin, "changelist")
