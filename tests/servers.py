"""Private redis-server and PostgreSQL processes for the test suite.

The suite never touches a server it did not start (STYLE.md section 12). A missing
binary is an error that says how to install it, never a skip.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from glob import glob
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

SETUP_HINT = "Run scripts/setup --with-test-deps to install it."
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# redis-py >= 6 retries connection errors 3 times with backoff by default,
# which turns every probe of a stopped or killed server into seconds of waiting.
NO_RETRY = Retry(NoBackoff(), 0)


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path.name} was not written)"


class Started:
    """A context manager over `start()` and `close()`: what a `with` block of a
    server (or a group of them) starts, it stops, also when starting fails."""

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RedisServer(Started):
    """A redis-server on a free loopback port, in its own temporary directory.

    Keyword arguments become config directives (underscores turn into hyphens),
    e.g. ``RedisServer(appendonly="yes", appendfsync="always")``. Persistence is
    off unless a directive turns it on. ``restart()`` keeps the port and the
    directory, so an append-only file survives ``kill()``.
    """

    def __init__(self, **config: str) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(f"redis-server is not on PATH. {SETUP_HINT}")
        self.executable = executable
        self.config = {"save": "", "appendonly": "no"}
        self.config.update({k.replace("_", "-"): v for k, v in config.items()})
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redisjobs-redis-"))
        self.logfile = self.dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, db: int = 0, **options: Any) -> redis.Redis:
        """Return a new client for this server: str responses, no retries.

        Without retries a command against a killed server fails at once with
        ``redis.ConnectionError``; ``options`` go to ``redis.Redis``.
        """
        options = {
            "decode_responses": True,
            "retry": NO_RETRY,
            **self.probe_options(),
            **options,
        }
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, **options)

    def probe_options(self) -> dict[str, Any]:
        """Extra redis-py options every client of this server needs (TLS)."""
        return {}

    def _command(self) -> list[str]:
        command = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.dir), "--logfile", str(self.logfile)]
        command += ["--daemonize", "no"]
        for name, value in self.config.items():
            command += [f"--{name}", value]
        return command

    def start(self) -> Self:
        if self.process is not None:
            raise RuntimeError(f"redis-server on port {self.port} is already running.")
        # stderr catches config errors that happen before the logfile opens.
        with open(self.dir / "stderr.log", "ab") as stderr:
            self.process = subprocess.Popen(
                self._command(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self._wait_for_ping()
        return self

    def _wait_for_ping(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        with redis.Redis(
            host="127.0.0.1", port=self.port, retry=NO_RETRY, **self.probe_options()
        ) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                with contextlib.suppress(redis.ConnectionError):
                    # BusyLoadingError (AOF replay) is a ConnectionError too.
                    if probe.ping():
                        return
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(
            f"redis-server did not answer PING on port {self.port}.\n"
            f"{_tail(self.dir / 'stderr.log')}\n{_tail(self.logfile)}"
        )

    def stop(self) -> None:
        """Shut down without saving and wait; the directory stays for restart()."""
        if self.process is None:
            return
        with (
            redis.Redis(
                host="127.0.0.1",
                port=self.port,
                socket_timeout=STOP_TIMEOUT_S,
                retry=NO_RETRY,
                **self.probe_options(),
            ) as probe,
            contextlib.suppress(redis.RedisError),
        ):
            probe.shutdown(nosave=True)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait for it to exit."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def restart(self) -> Self:
        """Stop the server if it runs, then start it on the same port and dir."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_bin_dir() -> Path:
    candidates = glob("/usr/lib/postgresql/*/bin/initdb")
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) "
            f"are missing. {SETUP_HINT}"
        )

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parts[-3]))

    return Path(max(candidates, key=version)).parent


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port, trust auth.

    Connect as user ``postgres`` to ``host``/``port``; the unix socket sits in the
    temporary directory too. PostgreSQL refuses to run as root, so as root the
    cluster belongs to the ``postgres`` system user and runs through ``runuser``.
    """

    user = "postgres"
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.bin_dir = _postgres_bin_dir()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redisjobs-pg-"))
        self.data_dir = self.dir / "data"
        self.running = False
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            self._prefix = [runuser, "-u", self.user, "--"]
            shutil.chown(self.dir, self.user, self.user)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        # cwd: initdb fails when it cannot read its working directory, which
        # the postgres user cannot when the tests run from /root.
        result = subprocess.run(
            [*self._prefix, str(self.bin_dir / tool), *args],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{_tail(self.dir / 'postgres.log')}"
            )

    def _configure(self) -> None:
        # Speed over durability: the cluster is deleted after the run.
        settings = {
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(lines)

    def start(self) -> Self:
        if not self.data_dir.exists():
            self._run(
                "initdb",
                *("-D", str(self.data_dir), "-U", self.user, "--auth=trust"),
                *("--encoding=UTF8", "--locale=C", "--no-sync"),
            )
            self._configure()
        log = str(self.dir / "postgres.log")
        # -w returns once the server accepts connections.
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", log, "-w", "start")
        self.running = True
        return self

    def stop(self) -> None:
        """Stop the server at once and delete the cluster."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "stop")
            self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
