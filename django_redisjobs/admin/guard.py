"""What every console view shares: the permission it needs, the page shown when
Redis cannot be reached, and the context of the admin around it."""

import functools
from collections.abc import Callable
from typing import Any, Concatenate

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from ..exceptions import RedisUnavailable
from ..keys import is_safe_name

View = Callable[Concatenate["admin.ModelAdmin[Any]", HttpRequest, ...], HttpResponse]

_CHECKS = {
    "view": admin.ModelAdmin.has_view_permission,
    "change": admin.ModelAdmin.has_change_permission,
    "delete": admin.ModelAdmin.has_delete_permission,
}


def needs(permission: str) -> Callable[[View], View]:
    """Refuse (403) a user without the model's `permission` ("view", "change" or
    "delete"), and answer a Redis outage with a page that says so (503).

    `AdminSite.admin_view`, around every console view, has already sent a user
    who is not active staff to the login page.
    """
    check = _CHECKS[permission]

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(
            model_admin: "admin.ModelAdmin[Any]",
            request: HttpRequest,
            *args: Any,
            **kwargs: Any,
        ) -> HttpResponse:
            if not check(model_admin, request):
                raise PermissionDenied
            request.current_app = model_admin.admin_site.name
            try:
                return view(model_admin, request, *args, **kwargs)
            except RedisUnavailable as err:
                return render(
                    model_admin,
                    request,
                    "redis_unavailable.html",
                    {"title": "Redis cannot be reached", "error": str(err)},
                    status=503,
                )

        return guarded

    return decorate


def render(
    model_admin: "admin.ModelAdmin[Any]",
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> TemplateResponse:
    """A console template inside the admin's frame (header, breadcrumbs, theme)."""
    full = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "can_change": model_admin.has_change_permission(request),
        "can_delete": model_admin.has_delete_permission(request),
        **context,
    }
    return TemplateResponse(
        request, f"admin/django_redisjobs/{template}", full, status=status
    )


def safe_name(value: str, what: str) -> str:
    """`value` when it can be a queue name or a job id; else 404."""
    if not is_safe_name(value):
        raise Http404(f"{what} {value!r} is not a valid name.")
    return value
