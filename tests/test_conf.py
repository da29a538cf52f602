"""Settings: defaults, validation, system checks, and how Redis is named."""

from datetime import timedelta
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from django_redisjobs.conf import DEFAULTS, FALLBACK_REDIS_URL, get_settings
from django_redisjobs.connection import get_connection
from django_redisjobs.exceptions import RedisJobsConfigurationError
from django_redisjobs.redis_urls import redact_url
from tests import jobs


def test_defaults_apply_when_setting_is_absent() -> None:
    with override_settings(REDISJOBS={}):
        settings = get_settings()
    assert settings.redis_url == FALLBACK_REDIS_URL
    assert settings.prefix == "redisjobs"
    assert settings.result_ttl == timedelta(days=1)
    assert settings.dead_ttl == timedelta(days=7)
    assert settings.max_attempts == 3
    assert settings.on_commit is True and settings.eager is False


def test_override_settings_drops_the_cache() -> None:
    with override_settings(REDISJOBS={"PREFIX": "one"}):
        assert get_settings().prefix == "one"
    with override_settings(REDISJOBS={"PREFIX": "two"}):
        assert get_settings().prefix == "two"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"PREFIX": "has space"}, r"REDISJOBS\['PREFIX'\] is 'has space'"),
        ({"MAX_ATTEMPTS": 0}, r"REDISJOBS\['MAX_ATTEMPTS'\] is 0. Use an int from 1"),
        ({"LEASE_S": "30"}, r"REDISJOBS\['LEASE_S'\] is '30'"),
        ({"EAGER": "yes"}, r"REDISJOBS\['EAGER'\] is 'yes'. Use True or False"),
        # It raised TypeError ("keywords must be strings") when the client was built.
        (
            {"REDIS_OPTIONS": {1: 5}},
            r"REDISJOBS\['REDIS_OPTIONS'\] is \{1: 5\}\. Use a dict of redis-py "
            r"options by their str names",
        ),
        # These passed validation and raised TypeError at the first command.
        (
            {"REDIS_OPTIONS": {"socket_timout": 5}},
            r"\['REDIS_OPTIONS'\] has 'socket_timout', which is not a redis-py",
        ),
        (
            {"REDIS_OPTIONS": {"socket_timeout": "10"}},
            r"sets 'socket_timeout' to '10'; use a number of seconds above 0, or None",
        ),
        (
            {"REDIS_OPTIONS": {"max_connections": 0}},
            r"sets 'max_connections' to 0; use a whole number of 1 or more",
        ),
        (
            {"REDIS_OPTIONS": {"decode_responses": False}},
            r"sets 'decode_responses', which the app owns",
        ),
        ({"REDIS_OPTIONS": {"db": 2}}, r"sets 'db'; give the server in REDIS_URL"),
        ({"OUTBOX": 1}, r"REDISJOBS\['OUTBOX'\] is 1\. Use True or False"),
        (
            {"OUTBOX_DATABASES": ["nope"]},
            r"REDISJOBS\['OUTBOX_DATABASES'\] is \['nope'\]\. Use a non-empty list",
        ),
        ({"OUTBOX_DATABASES": []}, r"is \[\]\. Use a non-empty list of aliases"),
        (
            {"SENTINEL": {"SERVICE": "m", "NODES": ["h:1"]}, "REDIS_URL": "redis://h"},
            r"REDISJOBS\['SENTINEL'\] is set together with REDIS_URL or CACHE_ALIAS",
        ),
        ({"SENTINEL": {"NODES": ["h:1"]}}, r"\['SENTINEL'\] needs SERVICE"),
        ({"SENTINEL": {"SERVICE": "m", "NODES": []}}, r"needs NODES, a list"),
        (
            {"SENTINEL": {"SERVICE": "m", "NODES": ["h:1", "nohost", "h:99999"]}},
            r"has the node 'nohost', which is not 'host:port'",
        ),
        ({"SENTINEL": "h:1"}, r"\['SENTINEL'\] is 'h:1'\. Use None, or a dict"),
        ({"RESULT_TTLS": 5}, r"REDISJOBS\['RESULT_TTLS'\] is not a known key"),
        (
            {"REDIS_URL": "redis://x", "CACHE_ALIAS": "default"},
            r"REDISJOBS\['CACHE_ALIAS'\] is set together with REDIS_URL",
        ),
        # A lease under 1 ms was stored as 0 ms; the others raised OverflowError
        # when the settings were built.
        (
            {"LEASE_S": 0.0001},
            r"REDISJOBS\['LEASE_S'\] is 0.0001. Use a number of seconds from 0.001 to "
            r"3155760000 \(about a century\)\.",
        ),
        ({"BACKOFF_BASE_S": 1e300}, r"REDISJOBS\['BACKOFF_BASE_S'\] is 1e\+300\."),
        ({"TIMEOUT_S": float("inf")}, r"is inf\. Use a number .*, or None for no lim"),
        pytest.param(
            {"DEAD_TTL_S": 10**5000},
            r"REDISJOBS\['DEAD_TTL_S'\] is <an int of 16610 bits>\. Use a number",
            id="huge-int-ttl",
        ),
        (
            {"MAX_ATTEMPTS": 1_000_001},
            r"REDISJOBS\['MAX_ATTEMPTS'\] is 1000001\. Use an int from 1 to 1000000\.",
        ),
        # Each of these used to raise while the message was built: repr() of an
        # int of more than 4,300 digits, or sorted() over keys of mixed types.
        pytest.param(
            {"PREFIX": 10**5000},
            r"REDISJOBS\['PREFIX'\] is <an int of 16610 bits>\.",
            id="huge-int-prefix",
        ),
        pytest.param(
            10**5000,
            r"REDISJOBS\['REDISJOBS'\] is <an int of 16610 bits>, not a dict",
            id="huge-int-setting",
        ),
        (
            {1: "a", "B": 2},
            r"REDISJOBS\['REDISJOBS'\] has the key 1, which is not a str\. Known",
        ),
    ],
)
def test_invalid_settings_raise_improperly_configured(
    raw: dict[str, Any], message: str
) -> None:
    with (
        override_settings(REDISJOBS=raw),
        pytest.raises(RedisJobsConfigurationError, match=message),
    ):
        get_settings()


def test_non_dict_setting_is_reported() -> None:
    with (
        override_settings(REDISJOBS="redis://x"),
        pytest.raises(RedisJobsConfigurationError, match="not a dict"),
    ):
        get_settings()


def test_system_check_lists_every_invalid_key_with_hint() -> None:
    with override_settings(REDISJOBS={"PREFIX": "a b", "MAX_ATTEMPTS": -1, "X": 1}):
        errors = list(checks.run_checks(tags=["redisjobs"]))
    assert {e.id for e in errors} == {"redisjobs.E001"}
    assert len(errors) == 3
    assert any("'PREFIX'" in e.msg and "letters" in (e.hint or "") for e in errors)


def test_system_check_is_quiet_for_valid_settings() -> None:
    with override_settings(REDISJOBS={"REDIS_URL": "redis://localhost:6379/1"}):
        assert checks.run_checks(tags=["redisjobs"]) == []


def test_bad_redis_url_is_a_configuration_error() -> None:
    with (
        override_settings(REDISJOBS={"REDIS_URL": "http://nope"}),
        pytest.raises(RedisJobsConfigurationError, match="scheme 'http'"),
    ):
        get_connection()


def test_a_url_redis_py_refuses_is_a_configuration_error_without_its_password() -> None:
    # It passes validation; redis-py refuses the db in the query when the client
    # is built, and that message used to show the URL whole.
    with (
        override_settings(REDISJOBS={"REDIS_URL": "redis://:s3cret@h/0?db=x"}),
        pytest.raises(RedisJobsConfigurationError) as raised,
    ):
        get_connection()
    assert str(raised.value) == (
        "REDISJOBS['REDIS_URL'] is 'redis://***@h/0?db=x', which redis-py cannot "
        "use: Invalid value for 'db' in connection URL."
    )


def test_cache_alias_reuses_the_django_redis_cache_settings(
    redis_server: Any,
) -> None:
    caches = {
        "jobs": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_server.url,
        }
    }
    with override_settings(
        CACHES=caches, REDISJOBS={"CACHE_ALIAS": "jobs", "PREFIX": "ca"}
    ):
        connection = get_connection()
        assert connection.client.ping() is True
        handle = jobs.add.delay(1, 2)
        # Replies decode to str even though the cache's own client uses bytes.
        assert connection.client.hget(f"ca:{{ca:default}}:job:{handle.id}", "func") == (
            "tests.jobs.add"
        )


def test_unknown_cache_alias_is_a_configuration_error() -> None:
    with (
        override_settings(REDISJOBS={"CACHE_ALIAS": "missing"}),
        pytest.raises(
            RedisJobsConfigurationError,
            match="'missing', which is not a django-redis cache",
        ),
    ):
        get_connection()


def test_every_default_is_validated() -> None:
    from django_redisjobs.conf import _CHECKS

    assert set(_CHECKS) == set(DEFAULTS)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user:s3cret@localhost:6379/0", "scheme 'http'"),
        ("redis://:s3cret@localhost:99999/0", "invalid port"),
        ("rediss://user:s3cret@localhost:port/0", "invalid port"),
        ("redis://s3cret@:6379/0", "names no host"),
        ("redis://localhost:0/0?password=s3cret", "port is 0"),
        # No valid scheme: urlsplit finds no netloc, and the URL was shown whole.
        ("://:s3cret@localhost:6379/0", "scheme ''"),
        ("redis:s3cret@localhost", "names no host"),
    ],
)
def test_a_bad_redis_url_is_a_check_error_that_never_shows_its_password(
    url: str, problem: str
) -> None:
    with override_settings(REDISJOBS={"REDIS_URL": url}):
        errors = list(checks.run_checks(tags=["redisjobs"]))
        with pytest.raises(RedisJobsConfigurationError) as raised:
            get_settings()
    assert [e.id for e in errors] == ["redisjobs.E001"]
    assert problem in errors[0].msg
    for text in (errors[0].msg, str(raised.value)):
        assert "s3cret" not in text
        assert "***" in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://***@h:6379/0"),
        ("redis://u:s3cret@h/0", "redis://u:***@h/0"),
        ("redis://s3cret@h", "redis://***@h"),
        ("unix://:s3cret@/tmp/r.sock?db=1", "unix://***@/tmp/r.sock?db=1"),
        ("redis://h/0?password=s3cret&db=2", "redis://h/0?password=***&db=2"),
        ("redis://localhost:6379/1", "redis://localhost:6379/1"),
        ("://u:s3cret@h/0", "://***@h/0"),
        ("redis:s3cret@h", "redis:***@h"),
        ("s3cret@h", "***@h"),
        ("redis:/s3cret@h/0", "redis:/***@h/0"),
        ("redis//:s3cret@h/0", "***@h/0"),
    ],
)
def test_redact_url_hides_every_form_of_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_url_redis_py_refuses_is_shown_without_its_password() -> None:
    # Passes the settings check; redis-py refuses the query option.
    url = "redis://user:s3cret@localhost:6379/0?socket_timeout=soon"
    with (
        override_settings(REDISJOBS={"REDIS_URL": url}),
        pytest.raises(RedisJobsConfigurationError, match="redis-py") as raised,
    ):
        get_connection()
    assert "s3cret" not in str(raised.value)
    assert "user:***@localhost" in str(raised.value)
