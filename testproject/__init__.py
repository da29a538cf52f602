"""Runnable example project for django-redisjobs."""
