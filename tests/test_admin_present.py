"""How the console shows values: cron expressions in words, sizes, durations, and
the SVG chart."""

from datetime import UTC, datetime, timedelta

import pytest

from django_redisjobs.admin import chart, present


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 3 * * *", "every day at 03:00"),
        ("*/5 * * * *", "every 5 minutes"),
        ("* * * * *", "every minute"),
        ("15 * * * *", "every hour at minute 15"),
        ("0 9 * * 1-5", "every weekday at 09:00"),
        ("30 8 * * 1", "every Monday at 08:30"),
        ("0 0 1 * *", "every month on day 1 at 00:00"),
        ("0 12 25 12 *", "every year on December 25 at 12:00"),
        ("0 */2 * * *", "every 2 hours at minute 0"),
        ("0 9,17 * * *", "every day at 09:00 and 17:00"),
        ("*/10 9-17 * * *", "cron '*/10 9-17 * * *'"),
    ],
)
def test_cron_in_words(expression: str, words: str) -> None:
    assert present.cron_in_words(expression, "Europe/Berlin") == (
        f"{words}, Europe/Berlin"
    )


def test_sizes_and_durations() -> None:
    assert present.size(512) == "512 B"
    assert present.size(3 * 1024 * 1024 // 2) == "1.5 MiB"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert present.duration(start, start + timedelta(seconds=1.25)) == "1.25 s"
    assert present.duration(start, start + timedelta(seconds=184)) == "3 min 4 s"
    assert present.duration(start, None) == ""
    assert present.moment(start) == "2026-01-01 00:00:00"


def test_the_chart_draws_a_bar_per_bucket_with_counts_in_titles() -> None:
    buckets = [dict.fromkeys(("succeeded", "retrying", "dead", "cancelled"), 0)] * 3
    buckets = [*buckets[:2], {**buckets[2], "succeeded": 4, "dead": 1}]
    svg = chart.bars_svg(buckets, 0, 60_000, 'a "label" <b>')
    assert svg.count("<rect") == 2
    assert "<title>4 succeeded</title>" in svg
    assert "<title>1 failed (dead or retried)</title>" in svg
    assert 'aria-label="a &quot;label&quot; &lt;b&gt;"' in svg
    assert ">00:00 UTC<" in svg and ">00:03 UTC<" in svg


def test_an_empty_chart_says_zero() -> None:
    svg = chart.bars_svg([], 0, 60_000, "empty")
    assert "<rect" not in svg
