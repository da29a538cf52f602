import psycopg
import pytest
import redis
from django.db import connections

from tests.servers import PostgresServer, RedisServer


def test_shared_redis_server_answers_ping(redis_server: RedisServer) -> None:
    with redis_server.client() as client:
        assert client.ping()
        assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"


def test_shared_redis_server_has_persistence_off(redis_server: RedisServer) -> None:
    with redis_server.client() as client:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}


def test_killed_redis_server_comes_back_on_same_port_without_data(
    make_redis_server,
) -> None:
    server = make_redis_server()
    port = server.port
    with server.client() as client:
        client.set("k", "v")
        server.kill()
        with pytest.raises(redis.ConnectionError):
            client.get("k")
        server.restart()
        assert server.port == port
        assert client.get("k") is None


def test_append_only_data_survives_kill_and_restart(make_redis_server) -> None:
    server = make_redis_server(appendonly="yes", appendfsync="always")
    with server.client() as client:
        client.set("k", "v")
        server.kill()
        server.restart()
        assert client.get("k") == "v"
        assert client.config_get("appendfsync") == {"appendfsync": "always"}


def test_make_redis_server_gives_each_call_its_own_server(make_redis_server) -> None:
    first, second = make_redis_server(), make_redis_server()
    assert first.port != second.port
    assert first.dir != second.dir


def test_closed_redis_server_removes_its_directory() -> None:
    with RedisServer() as server:
        directory = server.dir
        assert directory.is_dir()
    assert not directory.exists()


def test_postgres_server_accepts_a_psycopg_connection(
    postgres_server: PostgresServer,
) -> None:
    with psycopg.connect(postgres_server.url) as conn:
        row = conn.execute("select current_user, inet_server_port()").fetchone()
    assert row == ("postgres", postgres_server.port)


@pytest.mark.django_db(databases=["postgres"])
def test_postgres_alias_points_at_the_private_cluster(
    postgres_server: PostgresServer,
) -> None:
    with connections["postgres"].cursor() as cursor:
        cursor.execute("select current_database(), inet_server_port()")
        assert cursor.fetchone() == ("test_redisjobs", postgres_server.port)
