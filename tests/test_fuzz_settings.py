"""Property: any ``REDISJOBS`` value gives either settings the rest of the app
accepts, or problems (a configuration error, system check errors); never another
exception, and never a password in a message.

"Accepted" means what the app's own rules allow: every duration from 1 ms to
`MAX_DURATION` (a timeout may be None), `MAX_ATTEMPTS` up to the jobs' limit,
names that can go into a key, and options redis-py takes as keywords. Validation,
`get_settings()` and the system checks must agree on which it is; building the
client (no I/O) may still refuse a URL that only redis-py's parser checks, with
our configuration error.

Examples per property (Hypothesis with ``database=None``: nothing is written to
disk), about 4 s in all on two shared cores:

- any REDISJOBS value, a few keys at a time: 600
- a REDIS_URL with a password, valid or broken, in every form: 300
"""

import string
from datetime import timedelta
from typing import Any

from django.core import checks
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from django_redisjobs.conf import DEFAULTS, Settings, get_settings, validate
from django_redisjobs.connection import build_client
from django_redisjobs.exceptions import RedisJobsConfigurationError
from django_redisjobs.job import MAX_ATTEMPTS_LIMIT, MAX_DURATION
from django_redisjobs.keys import is_safe_name
from tests.strategies import huge_ints, scalars, texts

bounded = settings(max_examples=600, deadline=None, database=None)
MS = timedelta(milliseconds=1)

anything = st.one_of(
    scalars,
    st.timedeltas(),
    st.lists(texts, max_size=2),
    st.dictionaries(texts | st.integers(), st.integers(), max_size=2),
)


def mostly(usual: st.SearchStrategy[Any], rest: st.SearchStrategy[Any]) -> Any:
    """`usual` three times in four, else `rest`."""
    return st.one_of(usual, usual, usual, rest)


seconds = mostly(
    st.floats(0.001, MAX_DURATION.total_seconds()) | st.integers(1, 10**6),
    st.one_of(
        st.integers(-5, 10**12),
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(0, 0.01),
        st.sampled_from([0.0009, 1e-9, 3155760000, 3155760001, 1e300]),
        huge_ints,
    ),
)
names = mostly(st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True), texts)
urls = st.sampled_from(
    [
        "redis://localhost:6379/0",
        "rediss://h:1/2",
        "unix:///tmp/r.sock?db=1",
        "http://h",
        "redis://:6379",
        "redis://h:0",
        "redis://h:99999",
        "redis://h/0?db=x",
        "redis://h/0?socket_timeout=x",
        "redis://[::1/0",
        "",
    ]
)
by_key: dict[str, st.SearchStrategy[Any]] = {
    "REDIS_URL": mostly(urls, texts),
    "CACHE_ALIAS": st.sampled_from(["default", "missing"]) | texts,
    "SENTINEL": st.none()
    | st.fixed_dictionaries(
        {
            "SERVICE": texts,
            "NODES": st.lists(st.sampled_from(["h:1", "h", ":2"]) | texts),
        },
        optional={"DB": st.integers(-1, 2), "PASSWORD": st.none() | texts},
    ),
    "REDIS_OPTIONS": st.dictionaries(
        st.sampled_from(
            ["socket_timeout", "db", "nope", "max_connections", "decode_responses"]
        )
        | texts
        | st.integers(),
        st.integers(0, 5) | texts | st.none() | st.booleans(),
        max_size=2,
    ),
    "PREFIX": names,
    "DEFAULT_QUEUE": names,
    "MAX_ATTEMPTS": mostly(
        st.integers(1, MAX_ATTEMPTS_LIMIT),
        st.integers(-2, MAX_ATTEMPTS_LIMIT + 2) | huge_ints,
    ),
    "BACKOFF_BASE_S": seconds,
    "BACKOFF_MAX_S": seconds,
    "BACKOFF_JITTER": st.booleans(),
    "TIMEOUT_S": st.none() | seconds,
    "RESULT_TTL_S": seconds,
    "DEAD_TTL_S": seconds,
    "LEASE_S": seconds,
    "ON_COMMIT": st.booleans(),
    "OUTBOX": st.booleans(),
    "OUTBOX_DATABASES": st.lists(
        st.sampled_from(["default", "postgres", "nope"]) | texts, max_size=2
    ),
    "EAGER": st.booleans(),
    "AUTODISCOVER_MODULES": st.lists(texts, max_size=2),
    # Any entry shape; tests/test_fuzz_cron.py goes deeper into entries.
    "CRON": st.lists(
        st.fixed_dictionaries(
            {
                "name": names,
                "function": st.sampled_from(["tests.cron_jobs.record", ".x", "a"]),
                "schedule": st.sampled_from(["@daily", "* * * * *", "61 * * * *"]),
            },
            optional={"timezone": texts, "queue": names, "args": anything},
        ),
        max_size=2,
    ),
}


@st.composite
def known_keys(draw: st.DrawFn) -> dict[str, Any]:
    """A few known keys with values of their type, and perhaps one of any type."""
    keys = sorted(draw(st.sets(st.sampled_from(sorted(by_key)), max_size=5)))
    odd = draw(st.sampled_from(["", *keys]))  # "": none of them
    return {key: draw(anything if key == odd else by_key[key]) for key in keys}


raw_settings = st.one_of(
    known_keys(),
    known_keys(),
    known_keys(),
    st.dictionaries(texts | st.integers(), anything, max_size=2),
    anything,
)


def check_usable(values: Settings) -> None:
    """What the app's rules accept, for each value of validated settings."""
    durations = [
        values.backoff_base,
        values.backoff_max,
        values.result_ttl,
        values.dead_ttl,
        values.lease,
    ]
    if values.timeout is not None:
        durations.append(values.timeout)
    for duration in durations:
        assert MS <= duration <= MAX_DURATION, duration
    assert 1 <= values.max_attempts <= MAX_ATTEMPTS_LIMIT
    assert is_safe_name(values.prefix)
    assert is_safe_name(values.default_queue)
    assert all(isinstance(key, str) for key in values.redis_options)
    if values.cache_alias is None:
        build_client(values).close()


def problems_of(raw: Any) -> tuple[list[str], Settings | None]:
    """Every message the app shows for `raw`, and the settings if it is valid."""
    problems = validate(raw)
    messages = [f"{p.key} {p.message} {p.hint}" for p in problems]
    with override_settings(REDISJOBS=raw):
        messages += [
            f"{m.msg} {m.hint}"
            for m in checks.run_checks(tags=["redisjobs"])
            if m.id and m.id.startswith("redisjobs.E")
        ]
        try:
            values: Settings | None = get_settings()
        except RedisJobsConfigurationError as err:
            assert problems, err
            return [*messages, str(err)], None
    assert not problems, problems
    assert values is not None
    try:
        check_usable(values)
    except RedisJobsConfigurationError as err:  # only build_client gets here
        messages.append(str(err))
    return messages, values


@bounded
@given(raw=raw_settings)
def test_any_setting_gives_usable_settings_or_a_configuration_error(
    raw: Any,
) -> None:
    messages, values = problems_of(raw)
    if values is None:
        assert messages
        for message in messages:
            assert message.rstrip().endswith("."), message
    elif isinstance(raw, dict) and raw:
        assert set(raw) <= set(DEFAULTS)


# -- passwords ------------------------------------------------------------------

password_text = st.text(string.ascii_letters + string.digits, min_size=4, max_size=10)
hosts = st.sampled_from(["localhost", "h", "10.0.0.1", "[::1]", ""])
ports = st.sampled_from(["", ":6379", ":0", ":99999", ":port", ":"])
paths = st.sampled_from(["", "/0", "/x", "/0?db=x", "/0?socket_timeout=x"])
schemes = st.sampled_from(["redis", "rediss", "unix", "http", ""])


@st.composite
def urls_with_passwords(draw: st.DrawFn) -> tuple[str, str]:
    # "Zq" never occurs elsewhere in these URLs: any "Zq..." shown is the password.
    password = "Zq" + draw(password_text)
    scheme, host, port, path = draw(schemes), draw(hosts), draw(ports), draw(paths)
    userinfo = draw(
        st.sampled_from([f":{password}@", f"user:{password}@", f"{password}@", ""])
    )
    query = "" if userinfo else f"password={password}"
    if query:
        path += ("&" if "?" in path else "?") + query
    slashes = draw(st.sampled_from(["://", "://", ":/", ":", "//", ":///"]))
    return f"{scheme}{slashes}{userinfo}{host}{port}{path}", password


@settings(max_examples=300, deadline=None, database=None)
@given(url_and_password=urls_with_passwords(), extra=st.sampled_from([{}, {"X": 1}]))
def test_no_message_about_a_redis_url_shows_its_password(
    url_and_password: tuple[str, str], extra: dict[str, Any]
) -> None:
    url, password = url_and_password
    messages, _ = problems_of({"REDIS_URL": url, **extra})
    for message in messages:
        assert password not in message, message
