"""JSON encoding of arguments and results: the only payload format.

Values must survive a JSON round trip unchanged (tuples become lists, as in
Django's Tasks framework), so a job's function sees on the worker what its caller
passed. Anything else raises `SerializationError` naming where the bad value sits.
"""

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .exceptions import SerializationError, shown

_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)
_SCALARS = (str, int, float, bool, type(None))
# Python refuses to turn longer integers into text, and back
# (sys.get_int_max_str_digits' default); refusing them here keeps a job readable
# by any worker. Comparing with the bound is exact and cheap, even for small ints.
_INT_DIGITS_MAX = 4_300
_INT_TOO_BIG = 10**_INT_DIGITS_MAX


def _check_text(text: str, where: str) -> None:
    """Refuse text that UTF-8 cannot carry (a lone surrogate): Redis stores bytes."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise SerializationError(
                f"{where} holds {text[err.start : err.end]!r}, a lone surrogate "
                "that UTF-8 cannot encode."
            ) from None


def _check(value: Any, where: str) -> None:
    """Walk `value` and raise for the first part JSON would change or refuse."""
    try:
        _walk(value, where)
    except RecursionError:
        raise SerializationError(
            f"{where} is nested too deeply (or contains itself) for JSON."
        ) from None


def _walk(value: Any, where: str) -> None:
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise SerializationError(f"{where} is {value!r}, which JSON cannot hold.")
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, int) and not -_INT_TOO_BIG < value < _INT_TOO_BIG:
            raise SerializationError(
                f"{where} is an integer of more than {_INT_DIGITS_MAX} digits, "
                "which Python will not write as JSON text."
            )
        return
    # Only a dict: the encoder refuses other mappings (MappingProxyType,
    # UserDict), so they fall through to the error below.
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{where} has the key {shown(key)}; JSON object keys must be "
                    "strings."
                )
            _check_text(key, f"{where} key")
            _walk(item, f"{where}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{where}[{index}]")
        return
    raise SerializationError(
        f"{where} is {shown(value)} of type {type(value).__name__}, which is not "
        "JSON-serialisable; pass plain str, int, float, bool, None, list or dict "
        "values (for example an id instead of a model instance)."
    )


def encode(value: Any, where: str) -> str:
    """Return `value` as compact JSON; `where` names it in the error message."""
    _check(value, where)
    return _encoder.encode(value)


def encode_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, str]:
    """Return (args_json, kwargs_json), naming the first bad argument on failure.

    `args` must be a list or tuple (a str would become a list of characters) and
    `kwargs` a mapping whose keys are str, as Python's own keyword names are.
    """
    if not isinstance(args, list | tuple):
        raise SerializationError(
            f"args is {shown(args)}, not a list or tuple of positional arguments."
        )
    if not isinstance(kwargs, Mapping):
        raise SerializationError(
            f"kwargs is {shown(kwargs)}, not a dict of keyword arguments."
        )
    for index, arg in enumerate(args):
        _check(arg, f"Positional argument {index}")
    for name, arg in kwargs.items():
        if not isinstance(name, str):
            raise SerializationError(
                f"kwargs has the key {shown(name)}; keyword argument names must be "
                "strings."
            )
        _check_text(name, "A keyword argument name")
        _check(arg, f"Keyword argument {name!r}")
    # Calls without arguments are common (cron jobs, "do the next batch"): skip
    # the encoder for them.
    args_json = _encoder.encode(list(args)) if args else "[]"
    kwargs_json = _encoder.encode(dict(kwargs)) if kwargs else "{}"
    return args_json, kwargs_json


def canonical(value: Any) -> str:
    """`value` (already checked by `encode` or `encode_arguments`) as JSON with
    sorted keys, so equal values give equal text."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def decode(text: str, where: str) -> Any:
    """Parse JSON text read back from Redis; raise `SerializationError` for text
    that is not JSON, or that nests too deeply for the parser."""
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as err:
        raise SerializationError(f"{where} holds invalid JSON: {text!r:.80}.") from err
