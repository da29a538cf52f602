"""Users and URLs for the admin console's tests."""

from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

PREFIX = "admin:django_redisjobs_jobconsole_"


def console_url(name: str, *args: str) -> str:
    return reverse(PREFIX + name, args=args)


def client_for(*perms: str, staff: bool = True) -> Client:
    """A logged-in client of a user with the console's `perms` ("view", ...)."""
    user = User.objects.create_user(
        f"user-{'-'.join(perms) or 'none'}-{staff}", password="pw", is_staff=staff
    )
    for perm in perms:
        user.user_permissions.add(Permission.objects.get(codename=f"{perm}_jobconsole"))
    client = Client()
    client.force_login(user)
    return client
