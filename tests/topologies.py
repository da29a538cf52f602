"""Redis set-ups past one plain server, started by the suite: a TLS server with
certificates made here by openssl, and a Sentinel-managed primary with a replica
and three sentinels. Like tests/servers.py, nothing here touches a server the
suite did not start, and a missing binary is an error, never a skip."""

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import redis

from tests.servers import (
    NO_RETRY,
    SETUP_HINT,
    START_TIMEOUT_S,
    RedisServer,
    Started,
    _tail,
    free_port,
)

SERVICE = "jobs-primary"
# How long the sentinels wait before they call the primary down. Shorter fails
# over sooner, but a primary that is only slow (a loaded CI machine, coverage on)
# could be replaced while it still takes writes; kill_primary() checks it was not.
DOWN_AFTER_MS = 3000


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise RuntimeError(f"openssl is not on PATH. {SETUP_HINT}")
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path, name: str = "ca") -> None:
    """Write a CA (`<name>.crt`) and, signed by it, a server certificate for
    127.0.0.1 (`server.crt`, `server.key`) and a client one (`client.*`)."""
    days = "2"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", days,
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=directory,
    )  # fmt: skip
    # What Python's default TLS context (VERIFY_X509_STRICT since 3.13) requires.
    (directory / "san.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        "subjectKeyIdentifier=hash\n"
    )
    for leaf in ("server", "client"):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{leaf}.key",
            "-out", f"{leaf}.csr", "-subj", f"/CN={leaf}", cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{leaf}.csr", "-CA", f"{name}.crt",
            "-CAkey", f"{name}.key", "-CAcreateserial", "-out", f"{leaf}.crt",
            "-days", days, "-extfile", "san.cnf", cwd=directory,
        )  # fmt: skip


class TlsRedisServer(RedisServer):
    """A redis-server that speaks only TLS, with certificates of its own; clients
    must present one signed by its CA (`tls-auth-clients yes`)."""

    def __init__(self, **config: str) -> None:
        super().__init__(**config)
        make_certificates(self.dir)
        self.ca = self.dir / "ca.crt"
        self.config.update(
            {
                "tls-port": str(self.port),
                "tls-cert-file": str(self.dir / "server.crt"),
                "tls-key-file": str(self.dir / "server.key"),
                "tls-ca-cert-file": str(self.ca),
                "tls-auth-clients": "yes",
            }
        )

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def tls_options(self) -> dict[str, str]:
        """redis-py options (and REDISJOBS REDIS_OPTIONS) for this server."""
        return {
            "ssl_ca_certs": str(self.ca),
            "ssl_certfile": str(self.dir / "client.crt"),
            "ssl_keyfile": str(self.dir / "client.key"),
        }

    def probe_options(self) -> dict[str, Any]:
        return {"ssl": True, **self.tls_options()}

    def _command(self) -> list[str]:
        command = super()._command()
        # The plain port is off: "--port 0" comes after the base's "--port N".
        return [*command, "--port", "0"]


class SentinelGroup(Started):
    """A primary, one replica and three sentinels watching them as `SERVICE`.

    Sentinels declare the primary down after `DOWN_AFTER_MS` without replies and
    fail over a few seconds later; `kill_primary()` starts that.
    """

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(f"redis-server is not on PATH. {SETUP_HINT}")
        self.executable = executable
        # The first full sync starts at once, not after the default 5 s wait
        # for more replicas; so does the replica's, should it be promoted.
        self.primary = RedisServer(repl_diskless_sync_delay="0")
        self.replica: RedisServer | None = None
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.dir = Path(tempfile.mkdtemp(prefix="redisjobs-sentinel-"))
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def nodes(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def start(self) -> Self:
        self.primary.start()
        self.replica = RedisServer(
            replicaof=f"127.0.0.1 {self.primary.port}", repl_diskless_sync_delay="0"
        ).start()
        for n, port in enumerate(self.sentinel_ports):
            conf = self.dir / f"sentinel{n}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"logfile {self.dir / f'sentinel{n}.log'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self.processes.append(
                subprocess.Popen(
                    [self.executable, str(conf), "--sentinel"],
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self._wait_until_watching()
        return self

    def _wait_until_watching(self) -> None:
        """Until the replica is in sync and every sentinel knows both servers."""
        assert self.replica is not None
        deadline = time.monotonic() + START_TIMEOUT_S * 3
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError), self.replica.client() as probe:
                linked = probe.info("replication")["master_link_status"] == "up"
                if linked and all(
                    self._sentinel(port).sentinel_slaves(SERVICE)
                    for port in self.sentinel_ports
                ):
                    return
            time.sleep(0.1)
        logs = "\n".join(_tail(p) for p in sorted(self.dir.glob("*.log")))
        raise RuntimeError(f"the sentinels did not see the replica in time.\n{logs}")

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=port, decode_responses=True, retry=NO_RETRY
        )

    def primary_port(self) -> int:
        """The primary's port as the first sentinel that answers sees it."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError):
                _, primary_port = self._sentinel(port).sentinel_get_master_addr_by_name(
                    SERVICE
                )
                return int(primary_port)
        raise RuntimeError("no sentinel answered")

    def kill_primary(self) -> None:
        """SIGKILL the primary (a crash); the sentinels promote the replica.

        Refuses when the sentinels no longer name the first primary: a failover
        happened already, and the test would measure something else."""
        if self.primary_port() != self.primary.port:
            raise RuntimeError("the sentinels failed over before the kill")
        self.primary.kill()

    def wait_for_failover(self, timeout_s: float = 30.0) -> None:
        """Until every sentinel names the replica as the primary and sees it up
        (what a client's discovery asks), and the replica accepts writes."""
        assert self.replica is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if all(self._sees_replica_as_primary(p) for p in self.sentinel_ports):
                    with self.replica.client() as client:
                        if client.role()[0] == "master":
                            return
            time.sleep(0.1)
        raise RuntimeError("the sentinels did not fail over in time")

    def _sees_replica_as_primary(self, port: int) -> bool:
        assert self.replica is not None
        state = self._sentinel(port).sentinel_master(SERVICE)
        return (
            int(state["port"]) == self.replica.port
            and state["is_master"]
            and not state["is_sdown"]
            and not state["is_odown"]
        )

    def close(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes.clear()
        if self.replica is not None:
            self.replica.close()
        self.primary.close()
        shutil.rmtree(self.dir, ignore_errors=True)
