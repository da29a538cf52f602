"""Encoding and decoding edge cases that once escaped as raw Python errors.

Each was found by the properties in `test_fuzz_serialization.py`; these pin the
exact cases with their messages.
"""

from collections import UserDict
from types import MappingProxyType
from typing import Any

import pytest

from django_redisjobs.exceptions import SerializationError, shown
from django_redisjobs.serialization import decode, encode


class _Unshowable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_shown_cuts_long_values_and_never_raises() -> None:
    assert shown("x" * 500) == repr("x" * 499)[:200] + "..."
    assert shown(10**5000) == f"<an int of {(10**5000).bit_length()} bits>"
    assert shown(_Unshowable()) == "<a _Unshowable that cannot be shown>"


def test_a_dict_key_too_long_to_show_is_refused_with_our_error() -> None:
    with pytest.raises(SerializationError, match="has the key <an int of 16610 bits>"):
        encode({10**5000: 1}, "The value")


def test_a_value_whose_repr_raises_is_refused_with_our_error() -> None:
    with pytest.raises(SerializationError, match=r"is <a _Unshowable that cannot"):
        encode([_Unshowable()], "The value")


@pytest.mark.parametrize("value", [MappingProxyType({"a": 1}), UserDict(a=1)])
def test_a_mapping_that_is_not_a_dict_is_refused(value: Any) -> None:
    with pytest.raises(SerializationError, match="which is not JSON-serialisable"):
        encode({"outer": value}, "The value")


def test_decoding_text_nested_too_deeply_raises_our_error() -> None:
    # A hand-written or damaged result: Job.result and handles read it with decode.
    with pytest.raises(SerializationError, match=r"^The result holds invalid JSON"):
        decode("[" * 100_000 + "]" * 100_000, "The result")


@pytest.mark.parametrize("sign", [1, -1])
def test_ints_of_up_to_4300_digits_round_trip_and_longer_ones_are_refused(
    sign: int,
) -> None:
    # 10**4250 has 4,251 digits; a bit-count bound used to refuse it, saying
    # "more than 4300 digits".
    for value in (sign * 10**4250, sign * (10**4300 - 1)):
        assert decode(encode(value, "The value"), "The value") == value
    with pytest.raises(SerializationError, match="more than 4300 digits"):
        encode(sign * 10**4300, "The value")
