"""Background functions that read the database, for the transaction tests."""

from django.contrib.auth.models import User

from django_redisjobs import background


@background
def user_exists(username: str, using: str = "default") -> bool:
    return User.objects.using(using).filter(username=username).exists()
