"""The worker's slots: how many jobs it may claim, and when it claims again."""

import threading

import pytest

from django_redisjobs.claiming import PREFETCH_WINDOW_S, Slots


def test_untimed_worker_uses_the_whole_prefetch() -> None:
    slots = Slots(concurrency=4, prefetch=64)
    assert slots.ahead() == 64
    assert slots.take(limit=1000, timeout_s=0) == 68


def test_short_attempts_keep_the_whole_prefetch_and_long_ones_shrink_it() -> None:
    short = Slots(concurrency=4, prefetch=64)
    short.timed(0.0001)
    assert short.ahead() == 64

    ten_ms = Slots(concurrency=4, prefetch=64)
    ten_ms.timed(0.01)
    assert ten_ms.ahead() == int(4 * PREFETCH_WINDOW_S / 0.01)

    long = Slots(concurrency=4, prefetch=64)
    long.timed(30.0)
    assert long.ahead() == 1  # still one ready when a thread frees up
    assert long.take(limit=1000, timeout_s=0) == 5


def test_average_moves_towards_recent_attempts() -> None:
    slots = Slots(concurrency=4, prefetch=64)
    slots.timed(30.0)
    for _ in range(200):
        slots.timed(0.0001)
    assert slots.ahead() == 64


def test_no_prefetch_stays_none_whatever_the_timing() -> None:
    slots = Slots(concurrency=2, prefetch=0)
    slots.timed(0.0001)
    assert slots.ahead() == 0
    assert slots.take(limit=10, timeout_s=0) == 2
    assert slots.take(limit=10, timeout_s=0) == 0
    slots.give_back()
    assert slots.take(limit=10, timeout_s=0) == 1


def test_claims_again_only_once_half_the_prefetch_is_free() -> None:
    slots = Slots(concurrency=4, prefetch=16)
    assert slots.take(limit=100, timeout_s=0) == 20
    slots.give_back(7)
    assert slots.take(limit=100, timeout_s=0) == 0  # 7 free, 8 wanted
    slots.give_back()
    assert slots.take(limit=100, timeout_s=0) == 8


def test_limit_below_half_the_prefetch_is_enough_to_claim() -> None:
    slots = Slots(concurrency=4, prefetch=16)
    assert slots.take(limit=20, timeout_s=0) == 20
    slots.give_back(2)
    assert slots.take(limit=2, timeout_s=0) == 2  # max_jobs leaves only 2


def test_a_waiting_claim_wakes_when_enough_slots_come_back() -> None:
    slots = Slots(concurrency=1, prefetch=4)
    assert slots.take(limit=10, timeout_s=0) == 5
    taken: list[int] = []
    claim = threading.Thread(target=lambda: taken.append(slots.take(10, 30)))
    claim.start()
    slots.give_back()
    slots.give_back()
    claim.join(timeout=30)
    assert taken == [2]


def test_giving_back_more_than_taken_is_an_error() -> None:
    slots = Slots(concurrency=1, prefetch=1)
    with pytest.raises(ValueError, match="more often than taken"):
        slots.give_back()
