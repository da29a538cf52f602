"""`ConsoleAdmin`: the placeholder model's admin, which mounts the console's
pages, actions and JSON under the admin's URLs, each behind `admin_view` (staff
only: others go to the login page) and the permission its view needs."""

import functools
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import URLPattern, path

from . import actions, cron, events, live, pages


# ModelAdmin is generic only in django-stubs; subscripting it fails at run time.
class ConsoleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """No database rows: every URL is a console view over Redis."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}"

        def mount(route: str, view: Any, suffix: str) -> URLPattern:
            bound = functools.partial(view, self)
            functools.update_wrapper(bound, view)
            return path(
                route, self.admin_site.admin_view(bound), name=f"{name}_{suffix}"
            )

        return [
            mount("", pages.overview, "changelist"),
            mount("queue/<str:queue>/<str:state>/", pages.job_list, "jobs"),
            mount("job/<str:queue>/<str:job_id>/", pages.job_detail, "job"),
            mount("find/", pages.find_job, "find"),
            mount("workers/", pages.workers, "workers"),
            mount("cron/", cron.cron_page, "cron"),
            mount("events/<str:event>/", events.event_page, "event"),
            mount("action/<str:name>/", actions.act, "action"),
            mount("live/overview/", live.overview_json, "live_overview"),
            mount("live/job/<str:queue>/<str:job_id>/", live.job_json, "live_job"),
        ]
