"""Background functions of the demo: each one stands for a common kind of job.

They run inline when called (``send_reminder_email("a@example.com", "Hi", 3)``) and in
a worker when enqueued with ``.delay()`` or ``.enqueue()``. Arguments and return
values are plain JSON types.
"""

import asyncio
import logging
import math
import os
import random
import smtplib
import struct
import time
import zlib
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.utils.text import slugify

from django_redisjobs import JobContext, NoCurrentJob, Retry, background, current_job

logger = logging.getLogger(__name__)

MAX_THUMBNAIL_SIDE = 1024
MAX_CRUNCH_N = 1_000_000
CRUNCH_STEPS = 5
# Sleeping between steps keeps the job visibly "active" for about 0.75 s in total.
CRUNCH_STEP_PAUSE_S = 0.15
FEED_FETCH_S = 0.2


def _running_job() -> JobContext | None:
    """The running job's context, or None when the function is called inline."""
    try:
        return current_job()
    except NoCurrentJob:
        return None


@background(
    queue="emails",
    max_attempts=3,
    timeout=timedelta(seconds=30),
    retry_on=(smtplib.SMTPException, OSError),
)
def send_reminder_email(
    user_email: str, subject: str, days_left: int
) -> dict[str, object]:
    """Send a trial-expiry reminder to ``user_email``; return who got it and how many.

    Transport errors (SMTP, network) are retried; anything else marks the job dead.
    """
    noun = "day" if days_left == 1 else "days"
    body = (
        f"Hello,\n\nYour trial ends in {days_left} {noun}. "
        "Upgrade any time from your account page.\n\n-- The example team\n"
    )
    sent = send_mail(subject, body, None, [user_email])
    logger.info("reminder sent to=%s days_left=%d", user_email, days_left)
    return {"to": user_email, "sent": sent}


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def _gradient_png(width: int, height: int, blue: int) -> bytes:
    """Encode an 8-bit RGB PNG fading red left to right and green top to bottom."""
    rows = bytearray()
    for y in range(height):
        green = y * 255 // max(height - 1, 1)
        # Each scanline starts with filter type 0 (None), as the PNG spec requires.
        rows.append(0)
        for x in range(width):
            rows += bytes((x * 255 // max(width - 1, 1), green, blue))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9)),
            _png_chunk(b"IEND", b""),
        )
    )


@background(no_retry_on=(ValueError,))
def render_thumbnail(name: str, width: int, height: int) -> str:
    """Render a gradient PNG thumbnail under ``MEDIA_ROOT/thumbnails/``.

    Returns the path relative to ``MEDIA_ROOT``. The file name depends only on the
    arguments, so a retried job overwrites its own earlier output. Raises
    ``ValueError`` (no retry) for a side outside 1..1024 or an empty name.
    """
    for side in (width, height):
        if not 1 <= side <= MAX_THUMBNAIL_SIDE:
            raise ValueError(
                f"Thumbnail sides must be 1..{MAX_THUMBNAIL_SIDE} pixels, got {side!r}."
            )
    slug = slugify(name)
    if not slug:
        raise ValueError(f"Thumbnail name {name!r} has no usable characters.")
    relative = Path("thumbnails") / f"{slug}-{width}x{height}.png"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    data = _gradient_png(width, height, blue=zlib.crc32(slug.encode()) & 0xFF)
    # Write then rename: os.replace is atomic, so readers never see half a file.
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(target)
    logger.info("thumbnail written path=%s bytes=%d", relative, len(data))
    return relative.as_posix()


@background(max_attempts=5, retry_on=(ConnectionError,))
def flaky_sync(record_id: int, failure_rate: float = 0.5) -> str:
    """Push record ``record_id`` to an unreliable upstream service.

    Fails at random with probability ``failure_rate``: about half of the failures
    time out (``ConnectionError``, retried with the default backoff), the other
    half are "slow down" answers that ask for a retry in 2 seconds (``Retry``).
    Gives up after 5 attempts.
    """
    if not 0.0 <= failure_rate <= 1.0:
        raise ValueError(f"failure_rate must be within 0..1, got {failure_rate!r}.")
    job = _running_job()
    attempt = job.attempt if job is not None else 1
    logger.info("syncing record_id=%d attempt=%d", record_id, attempt)
    # Simulated network trouble; this is not a security-sensitive use of random.
    roll = random.random()  # noqa: S311
    if roll < failure_rate / 2:
        logger.warning("upstream rate limited record_id=%d", record_id)
        raise Retry(
            delay=timedelta(seconds=2), reason="Upstream asked to slow down (HTTP 429)."
        )
    if roll < failure_rate:
        raise ConnectionError(f"upstream timed out syncing record {record_id}")
    return f"record {record_id} synced on attempt {attempt}"


def _is_prime(number: int) -> bool:
    if number < 2:
        return False
    return all(number % divisor for divisor in range(2, math.isqrt(number) + 1))


@background(timeout=timedelta(seconds=60), no_retry_on=(ValueError,))
def crunch_numbers(n: int) -> int:
    """Count the primes up to ``n`` (at most 1,000,000), reporting progress.

    Works through ``n`` in five slices and calls ``set_progress`` after each one.
    """
    if not 0 <= n <= MAX_CRUNCH_N:
        raise ValueError(f"n must be within 0..{MAX_CRUNCH_N}, got {n!r}.")
    job = _running_job()
    step = n // CRUNCH_STEPS + 1
    primes = 0
    for index in range(CRUNCH_STEPS):
        start = index * step
        primes += sum(map(_is_prime, range(start, min(start + step, n + 1))))
        time.sleep(CRUNCH_STEP_PAUSE_S)
        if job is not None:
            job.set_progress(
                (index + 1) / CRUNCH_STEPS,
                f"slice {index + 1} of {CRUNCH_STEPS}: {primes} primes so far",
            )
    logger.info("crunched n=%d primes=%d", n, primes)
    return primes


@background(max_attempts=3, retry_on=(ConnectionError, TimeoutError))
async def import_feed(url: str) -> int:
    """Fetch the feed at ``url`` (simulated) and return how many entries it held.

    An ``async def`` background function: the worker runs it on an event loop.
    Raises ``ValueError`` (no retry) for a URL that is not http(s).
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"Feed URL must be http(s), got {url!r}.")
    await asyncio.sleep(FEED_FETCH_S)
    # A stable fake entry count, so repeated runs print the same result.
    entries = zlib.crc32(url.encode()) % 40 + 1
    logger.info("feed imported url=%s entries=%d", url, entries)
    return entries


@background(max_attempts=3, no_retry_on=(ValueError,))
def reject_bad_input(value: int) -> int:
    """Double ``value``; a negative value raises ``ValueError`` and is never retried."""
    if value < 0:
        raise ValueError(f"value must be zero or more, got {value!r}.")
    return value * 2
