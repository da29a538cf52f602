"""JSON encoding of arguments and results: the only payload format.

Values must survive a JSON round trip unchanged (tuples become lists, as in
Django's Tasks framework), so a job's function sees on the worker what its caller
passed. Anything else raises `SerializationError` naming where the bad value sits.
"""

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .exceptions import SerializationError

_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)
_SCALARS = (str, int, float, bool, type(None))


def _check(value: Any, where: str) -> None:
    """Walk `value` and raise for the first part JSON would change or refuse."""
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise SerializationError(f"{where} is {value!r}, which JSON cannot hold.")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{where} has the key {key!r}; JSON object keys must be strings."
                )
            _check(item, f"{where}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]")
        return
    raise SerializationError(
        f"{where} is {value!r} of type {type(value).__name__}, which is not "
        "JSON-serialisable; pass plain str, int, float, bool, None, list or dict "
        "values (for example an id instead of a model instance)."
    )


def encode(value: Any, where: str) -> str:
    """Return `value` as compact JSON; `where` names it in the error message."""
    _check(value, where)
    return _encoder.encode(value)


def encode_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, str]:
    """Return (args_json, kwargs_json), naming the first bad argument on failure."""
    for index, arg in enumerate(args):
        _check(arg, f"Positional argument {index}")
    for name, arg in kwargs.items():
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
    """Parse JSON text read back from Redis."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as err:
        raise SerializationError(f"{where} holds invalid JSON: {text!r:.80}.") from err
