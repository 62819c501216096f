"""Real local services for integration tests: PostgreSQL, Redis and long-running CLI processes.

Every service listens on 127.0.0.1 on a free port, keeps its data in a temp
folder and runs in its own process group, so :meth:`Service.stop` ends it and
everything it forked (Airflow and MLflow start worker children), also when a
test fails half way.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(check: Callable[[], bool], timeout: float, what: str, service: Service | None = None,
             every: float = 0.5) -> None:
    """Poll ``check`` until it is true; fail with the service's log tail on time-out or early exit.

    Args:
        check: returns True once the awaited condition holds (exceptions count as "not yet").
        timeout: seconds to wait at most.
        what: what is awaited, for the failure message.
        service: when given, its exit ends the wait at once and its log goes into the message.
        every: seconds between polls.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - a service still starting answers with all kinds of errors
            pass
        if service is not None and service.proc.poll() is not None:
            raise AssertionError(f"{service.name} exited with {service.proc.returncode} while waiting for {what}:\n"
                                 f"{service.log_tail()}")
        time.sleep(every)
    tail = f":\n{service.log_tail()}" if service is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")


class Service:
    """One long-running process in its own session (process group), output to a log file."""

    def __init__(self, name: str, cmd: Sequence[str], log: Path, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None, user: str | None = None, stop_signal: int = signal.SIGTERM):
        """Start ``cmd``.

        Args:
            name: a short name for messages.
            cmd: the command line.
            log: file receiving stdout and stderr.
            env: the full environment (default: this process's).
            cwd: working folder.
            user: run as this user (only when we are root; PostgreSQL refuses to run as root).
            stop_signal: the signal that asks the program for a clean, quick shutdown.
        """
        self.name, self.log, self.stop_signal = name, Path(log), stop_signal
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        as_user = {"user": user, "group": user, "extra_groups": []} if user else {}
        self.proc = subprocess.Popen(list(cmd), stdout=self._log_file, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                     start_new_session=True, **as_user)

    def log_tail(self, chars: int = 6000) -> str:
        """The last ``chars`` characters of the service's output."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def signal(self) -> None:
        """Ask the whole process group to stop (the program's clean, quick shutdown signal)."""
        try:
            os.killpg(self.proc.pid, self.stop_signal)
        except ProcessLookupError:
            pass

    def finish(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the leader to exit, then kill whatever is left of the group."""
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # Children (task runners, uvicorn/gunicorn workers) may outlive the leader: kill the group regardless.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log_file.close()

    def stop(self, grace: float = 20.0) -> None:
        """Ask the process group to stop, then kill what is left after ``grace`` seconds."""
        self.signal()
        self.finish(grace)


class Services:
    """Stops every service it started, last started first; use as a context manager."""

    def __init__(self):
        self.started: list[Service] = []

    def start(self, *args, **kwargs) -> Service:
        """Start a :class:`Service` (same arguments) and remember it for :meth:`stop_all`."""
        service = Service(*args, **kwargs)
        self.started.append(service)
        return service

    def stop_all(self, grace: float = 20.0) -> None:
        """Stop every started service, also when one of the stops fails.

        All get their stop signal first (newest first), then share one ``grace`` period, so that
        shutting several down takes as long as the slowest one, not the sum.
        """
        started, self.started = self.started[::-1], []
        for service in started:
            service.signal()
        deadline = time.monotonic() + grace
        for service in started:
            try:
                service.finish(max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                print(f"could not stop {service.name}: {exc}")

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def postgres_bindir() -> Path | None:
    """The folder holding PostgreSQL's ``initdb`` and ``postgres`` (newest version first), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]),
                        reverse=True)
    return Path(candidates[0]).parent if candidates else None


class Postgres:
    """A throw-away PostgreSQL server on 127.0.0.1; TCP logins need a password (SCRAM), as in production.

    The superuser is ``postgres`` with the random password :attr:`password`.
    """

    def __init__(self, services: Services, logdir: Path):
        """Create a cluster in a fresh temp folder and start the server; skip the test when PostgreSQL is missing."""
        bindir = postgres_bindir()
        if bindir is None:
            pytest.skip("PostgreSQL server binaries (initdb, postgres) not found: `make test` installs them "
                        "(apt-get install postgresql)")
        user = None
        # initdb and postgres refuse to run as root: run them as the postgres system user, with the data in a
        # folder of its own (pytest's tmp_path lives under a root-only folder).
        self.root = Path(tempfile.mkdtemp(prefix="hiericd-pg-"))
        if os.geteuid() == 0:
            user = "postgres"
            shutil.chown(self.root, user=user, group=user)
        self.bindir = bindir
        self.service: Service | None = None
        try:
            self._start(services, logdir, bindir, user)
        except BaseException:
            if self.service is not None:
                self.service.stop()
            self.cleanup()
            raise

    def _start(self, services: Services, logdir: Path, bindir: Path, user: str | None) -> None:
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.data = self.root / "data"
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if user:
            shutil.chown(pwfile, user=user, group=user)
        done = subprocess.run([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
                               "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C"],
                              capture_output=True, text=True,
                              **({"user": user, "group": user, "extra_groups": []} if user else {}))
        assert done.returncode == 0, f"initdb failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        pwfile.unlink()
        self.service = services.start(
            "postgres",
            [str(bindir / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.root), "-c", "fsync=off", "-c", "max_connections=200"],
            logdir / "postgres.log", user=user,
            stop_signal=signal.SIGINT,  # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM waits for clients
        )
        wait_for(self._ready, 60, "PostgreSQL to accept connections", self.service)

    def _ready(self) -> bool:
        self.connect("postgres").close()
        return True

    def url(self, database: str, driver: str = "postgresql", user: str = "postgres",
            password: str | None = None) -> str:
        """SQLAlchemy-style URL of ``database`` (e.g. driver ``postgresql+psycopg2``); the superuser by default."""
        password = self.password if password is None and user == "postgres" else password
        return f"{driver}://{user}:{quote(password or '', safe='')}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str, user: str = "postgres", password: str | None = None):
        """A psycopg2 connection (autocommit) to ``database``, as the superuser unless ``user`` is given."""
        import psycopg2

        password = self.password if password is None and user == "postgres" else password
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, password=password, dbname=database,
                                connect_timeout=5)
        conn.autocommit = True
        return conn

    def run_init_script(self, script: Path, env: dict[str, str]) -> None:
        """Run a ``docker-entrypoint-initdb.d`` shell script against this server, as the postgres image would.

        Args:
            script: the shell script (it calls ``psql``).
            env: extra environment for it (e.g. the passwords the compose file passes).
        """
        run_env = {**os.environ, **env, "POSTGRES_USER": "postgres", "PGHOST": "127.0.0.1", "PGPORT": str(self.port),
                   "PGPASSWORD": self.password, "PATH": f"{self.bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
        done = subprocess.run(["bash", str(script)], env=run_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"

    def create_database(self, name: str) -> None:
        """CREATE DATABASE ``name``."""
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def query(self, database: str, sql: str, args: Sequence | None = None) -> list[tuple]:
        """Rows of one SELECT (as the superuser)."""
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            conn.close()

    def cleanup(self) -> None:
        """Remove the cluster's folder (call after the server stopped)."""
        shutil.rmtree(self.root, ignore_errors=True)


class Redis:
    """A throw-away Redis server on 127.0.0.1, no persistence."""

    def __init__(self, services: Services, logdir: Path):
        """Start ``redis-server``; skip the test when it is not installed."""
        binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                                  else None)
        if binary is None:
            pytest.skip("redis-server not found: `make test` installs it (apt-get install redis-server)")
        self.port = free_port()
        self.dir = logdir / "redis"
        self.dir.mkdir(exist_ok=True)
        self.service = services.start(
            "redis",
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            logdir / "redis.log",
        )
        wait_for(self._ready, 30, "Redis to answer PING", self.service)

    def _ready(self) -> bool:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2).ping())

    def url(self, db: int = 0) -> str:
        """``redis://`` URL of logical database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"
