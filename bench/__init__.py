"""Benchmarks of django-redisjobs against RQ, Dramatiq, Huey and Celery on Redis.

Run ``bench/run`` (see docs/benchmarks.md). Nothing here is imported by the app.
"""
