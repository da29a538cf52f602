"""``REDISJOBS["SENTINEL"]``: reach a Sentinel-managed primary by its service name.

Sentinels watch a primary and its replicas and promote a replica when the primary
fails. redis-py's Sentinel client asks the sentinels for the primary's address on
every new connection, and a connection that finds its server gone or demoted to a
replica (READONLY) is dropped and raised as a connection error; the app's store
treats that as an outage and the next attempt reaches the new primary. This module
only reads and checks the setting; `connection` builds the client.
"""

from dataclasses import dataclass
from typing import Any

_HINT_KEYS = "SERVICE (str), NODES (list of 'host:port'), USERNAME, PASSWORD, DB"


@dataclass(frozen=True)
class SentinelSettings:
    """Where the sentinels are, which primary to ask them for, and how to log in
    to the sentinels themselves (the primary's credentials and TLS options are
    REDIS_OPTIONS' `username`, `password` and `ssl*`)."""

    service: str
    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    db: int = 0


def _node(text: Any) -> tuple[str, int] | None:
    if not isinstance(text, str):
        return None
    host, colon, port = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def problems(raw: Any) -> list[str]:
    """One sentence per thing wrong with the SENTINEL value; empty when usable."""
    if not isinstance(raw, dict):
        return []  # conf's type check reports anything but None and a dict
    found = [
        f"has the key {key!r}, which is not one of {_HINT_KEYS}."
        for key in sorted(
            map(str, set(raw) - {"SERVICE", "NODES", "USERNAME", "PASSWORD", "DB"})
        )
    ]
    service = raw.get("SERVICE")
    if not isinstance(service, str) or not service:
        found.append(f"needs SERVICE, the name the sentinels monitor; got {service!r}.")
    nodes = raw.get("NODES")
    if not isinstance(nodes, list | tuple) or not nodes:
        found.append(f"needs NODES, a list of 'host:port' strings; got {nodes!r}.")
    else:
        found += [
            f"has the node {node!r}, which is not 'host:port'."
            for node in nodes
            if _node(node) is None
        ]
    for key in ("USERNAME", "PASSWORD"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            found.append(
                f"has {key} of type {type(value).__name__}; use a str or None."
            )
    db = raw.get("DB", 0)
    if not isinstance(db, int) or isinstance(db, bool) or db < 0:
        found.append(f"has DB {db!r}; use a whole number of 0 or more.")
    return found


def parse(raw: Any) -> SentinelSettings | None:
    """The settings of a SENTINEL value that `problems` found nothing wrong with."""
    if raw is None:
        return None
    nodes = tuple(node for node in map(_node, raw["NODES"]) if node is not None)
    return SentinelSettings(
        service=raw["SERVICE"],
        nodes=nodes,
        username=raw.get("USERNAME"),
        password=raw.get("PASSWORD"),
        db=raw.get("DB", 0),
    )
