"""Property: any value either survives the JSON round trip exactly or is refused
with `SerializationError`, never another exception.

An independent, iterative oracle (`representable`) says which values JSON can
carry unchanged; the code under test must accept exactly those (up to a nesting
depth that depends on the stack) and refuse the rest. No Redis is needed.

Examples per property (Hypothesis with ``database=None``: nothing is written to
disk), about 8 s in all on two cores:

- any value through ``encode`` (and ``canonical``): 300
- any args and kwargs through ``encode_arguments``: 200
- args or kwargs of the wrong container type: 50
- nesting up to 100,000 deep: 60
- a value that contains itself: 50
- any text through ``decode``: 200
"""

import math
import string
from collections import UserDict, UserList
from datetime import date
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from django_redisjobs.exceptions import SerializationError
from django_redisjobs.serialization import canonical, decode, encode, encode_arguments

# Python (and so the worker) refuses to turn an int of more than 4,300 digits
# into text, and back (sys.get_int_max_str_digits' default).
INT_TOO_BIG = 10**4300
# Every value nested less deeply than this must be accepted when representable;
# deeper ones may be refused for the stack's sake, with a clear error.
SHALLOW = 200


def bounded(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None)


# -- strategies -----------------------------------------------------------------

# st.text() leaves lone surrogates out, whatever its alphabet: join characters.
surrogates = st.characters(categories=["Cs"])
texts = st.text(max_size=12) | st.lists(st.characters() | surrogates, max_size=6).map(
    "".join
)
huge_ints = st.builds(
    lambda bits, sign: sign * ((1 << bits) - 1),
    st.integers(0, 15_000),
    st.sampled_from([1, -1]),
)
# Around the 4,300-digit limit: 10**e + offset, either sign. (Hypothesis shows
# its strategies with repr(), which refuses such ints: build them from small ones.)
digit_edges = st.builds(
    lambda exponent, offset, sign: sign * (10**exponent + offset),
    st.sampled_from([4_214, 4_215, 4_250, 4_299, 4_300]),
    st.integers(-1, 1),
    st.sampled_from([1, -1]),
)
# Values JSON cannot carry, or can carry only by changing them.
foreign = st.sampled_from(
    [
        b"bytes",
        bytearray(b"x"),
        {1, 2},
        frozenset(),
        1j,
        Decimal("1.5"),
        Fraction(1, 3),
        date(2026, 1, 1),
        object(),
        range(3),
        MappingProxyType({"a": 1}),
        UserDict(a=1),
        UserList([1]),
        ...,
        print,
    ]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_ints
    | digit_edges
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
keys = texts | st.integers() | st.none() | st.booleans() | st.floats()
values = st.recursive(
    scalars | foreign,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(texts, inner, max_size=4)
        | st.dictionaries(keys, inner, max_size=3)
    ),
    max_leaves=20,
)


# -- the oracle -----------------------------------------------------------------


def brief(value: Any) -> str:
    """repr() for messages, which refuses ints of more than 4,300 digits."""
    try:
        return repr(value)[:300]
    except ValueError:
        return f"<{type(value).__name__} too long to show>"


def _text_ok(text: str) -> bool:
    return not any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def _scalar_ok(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is int:
        return -INT_TOO_BIG < value < INT_TOO_BIG
    if type(value) is str:
        return _text_ok(value)
    return value is None or type(value) is bool


def representable(value: Any) -> bool:
    """Whether JSON carries `value` unchanged (tuples as lists); no recursion, so
    it answers for any depth. A container met again on its own path is a cycle."""
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
        elif type(item) in (list, tuple, dict):
            if id(item) in on_path:
                return False
            on_path.add(id(item))
            stack.append((item, True))
            if type(item) is dict:
                if not all(type(k) is str and _text_ok(k) for k in item):
                    return False
                stack.extend((v, False) for v in item.values())
            else:
                stack.extend((v, False) for v in item)
        elif not _scalar_ok(item):
            return False
    return True


def depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if type(item) is dict else item
        if type(item) in (list, tuple, dict):
            stack.extend((child, level + 1) for child in children)
    return deepest


def same(decoded: Any, original: Any) -> bool:
    """Exact equality after a round trip: types too (True is not 1), the sign of
    0.0, and tuples read back as lists. No recursion, for deep values."""
    stack = [(decoded, original)]
    while stack:
        children = _matching_children(*stack.pop())
        if children is None:
            return False
        stack.extend(children)
    return True


def _matching_children(got: Any, want: Any) -> list[tuple[Any, Any]] | None:
    """The pairs of parts still to compare, or None when `got` and `want` differ."""
    if type(want) is tuple:
        want = list(want)
    if type(got) is not type(want):
        return None
    if type(want) is list:
        return list(zip(got, want, strict=True)) if len(got) == len(want) else None
    if type(want) is dict:
        return [(got[k], want[k]) for k in want] if got.keys() == want.keys() else None
    if type(want) is float:
        equal = got == want and math.copysign(1, got) == math.copysign(1, want)
        return [] if equal else None
    return [] if got == want else None


def check_encoded(value: Any, encoding: Any) -> None:
    """`encoding()` returns JSON text that decodes to exactly `value`, or raises
    SerializationError; which of the two is up to the oracle."""
    try:
        text = encoding()
    except SerializationError as err:
        too_deep = "nested too deeply" in str(err) and depth(value) >= SHALLOW
        assert not representable(value) or too_deep, err
        assert str(err).endswith("."), err
        return
    assert representable(value), f"{brief(value)} was accepted as {brief(text)}"
    text.encode("utf-8")  # Redis stores bytes: the text must encode.
    assert same(decode(text, "the text"), value)


# -- encode ---------------------------------------------------------------------


@bounded(300)
@given(value=values)
def test_a_value_round_trips_exactly_or_is_refused(value: Any) -> None:
    check_encoded(value, lambda: encode(value, "The value"))
    if representable(value):
        assert same(decode(canonical(value), "canonical"), value)


@bounded(200)
@given(
    args=st.lists(values, max_size=3) | st.lists(values, max_size=3).map(tuple),
    kwargs=st.dictionaries(texts, values, max_size=3)
    | st.dictionaries(keys, values, max_size=2),
)
def test_arguments_round_trip_exactly_or_are_refused(
    args: list[Any] | tuple[Any, ...], kwargs: dict[Any, Any]
) -> None:
    try:
        args_json, kwargs_json = encode_arguments(args, kwargs)
    except SerializationError as err:
        assert not (representable(args) and representable(kwargs)), err
        return
    assert representable(args), f"{brief(args)} was accepted"
    assert representable(kwargs), f"{brief(kwargs)} was accepted"
    for text in (args_json, kwargs_json):
        text.encode("utf-8")
    assert same(decode(args_json, "args"), args)
    assert same(decode(kwargs_json, "kwargs"), kwargs)


@bounded(50)
@given(
    args=st.sampled_from(["ab", b"ab", 5, None, {"a": 1}, {1, 2}, range(2)]),
    kwargs=st.sampled_from([None, [1], [("a", 1)], "ab", 5, MappingProxyType({})]),
)
def test_arguments_of_the_wrong_container_type_are_refused(
    args: Any, kwargs: Any
) -> None:
    with pytest.raises(SerializationError, match=r"(args|kwargs) is .*\.$"):
        encode_arguments(args, kwargs)


# -- deep and cyclic values -----------------------------------------------------


def nest(levels: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"k": value} if kind == "dict" else [value]
        if kind == "tuple":
            value = tuple(value)
    return value


@bounded(60)
@given(
    levels=st.integers(0, 3_000) | st.sampled_from([990, 999, 1_000, 1_001, 100_000]),
    kind=st.sampled_from(["list", "tuple", "dict"]),
)
def test_deep_nesting_round_trips_or_is_refused_as_too_deep(
    levels: int, kind: str
) -> None:
    value = nest(levels, kind)
    check_encoded(value, lambda: encode(value, "The value"))
    check_encoded([value], lambda: encode_arguments([value], {})[0])


@bounded(50)
@given(
    container=st.lists(values, max_size=3) | st.dictionaries(texts, values, max_size=3),
    where=st.integers(0, 3),
    wrap=st.integers(0, 3),
)
def test_a_value_that_contains_itself_is_refused(
    container: list[Any] | dict[str, Any], where: int, wrap: int
) -> None:
    plain = representable(container)
    if isinstance(container, list):
        container.insert(where, container)
    else:
        container[f"self{where}"] = container
    value: Any = container
    for _ in range(wrap):
        value = [value]
    # A part JSON cannot carry may be found before the cycle is.
    message = "contains itself" if plain else None
    with pytest.raises(SerializationError, match=message):
        encode(value, "The value")
    with pytest.raises(SerializationError, match=message):
        encode_arguments((), {"value": value})


# -- decode ---------------------------------------------------------------------

json_texts = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=string.printable, max_size=20),
    st.text(alphabet='[]{}":,0123456789.eE-+ntrufalsNIiy\\', max_size=30),
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 200_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(4_290, 4_310).map(lambda n: "9" * n),
)


@bounded(200)
@given(text=json_texts)
def test_decoding_any_text_gives_a_value_or_serialization_error(text: str) -> None:
    try:
        decode(text, "The stored text")
    except SerializationError as err:
        assert str(err).startswith("The stored text holds invalid JSON")
