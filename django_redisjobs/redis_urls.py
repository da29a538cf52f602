"""REDIS_URL strings: what is wrong with one, and how to show one without its
credentials (every message and log line that shows a URL goes through
`redact_url`)."""

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@dataclass(frozen=True)
class UrlProblem:
    message: str
    hint: str


_URL_SCHEMES = ("redis", "rediss", "unix")
# Credentials where urlsplit finds none: after an optional "scheme:" and any
# slashes, everything up to the last "@" before a query. It may hide more than
# the credentials of an odd URL, never less.
_LOOSE_USERINFO = re.compile(r"^(?P<lead>(?:[^:/?#@]*:)?/*)[^?#]*@")
_SECRET_QUERY_KEYS = frozenset({"password", "username"})


def redact_url(url: str) -> str:
    """`url` with its credentials replaced by ``***``, for messages and logs.

    Covers ``user:password@``, a lone ``secret@`` (redis-py reads it as a user
    name, but people put passwords there), and ``?password=`` in the query.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret_query = any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs)
    if "@" not in parts.netloc and not secret_query:
        # A URL urlsplit reads no credentials from ("://:secret@host",
        # "redis:/secret@h") may still hold some.
        return _LOOSE_USERINFO.sub(r"\g<lead>***@", url, count=1)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0] if ":" in userinfo else ""
        netloc = f"{user}:***@{hostport}" if user else f"***@{hostport}"
    query = urlencode(
        [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs],
        safe="*",
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def url_problem(url: str) -> UrlProblem | None:
    """What is wrong with a ``REDIS_URL`` string, before redis-py sees it."""
    redacted = redact_url(url)
    hint = (
        "Use redis://[[user]:password@]host[:port][/db], rediss:// for TLS, or "
        "unix:///path/to/socket."
    )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return UrlProblem(f"is {redacted!r}, which has an invalid port.", hint)
    if parts.scheme not in _URL_SCHEMES:
        return UrlProblem(
            f"is {redacted!r}, whose scheme {parts.scheme!r} is not one of "
            f"{', '.join(_URL_SCHEMES)}.",
            hint,
        )
    if parts.scheme != "unix" and not parts.hostname:
        return UrlProblem(f"is {redacted!r}, which names no host.", hint)
    if port == 0:
        return UrlProblem(f"is {redacted!r}, whose port is 0.", hint)
    return None
