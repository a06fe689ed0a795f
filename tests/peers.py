"""Private peers a test may stop and start: a PostgreSQL cluster and a redis-server.

The shared servers (`PRINTCLOUD_TEST_DATABASE_URL`, `PRINTCLOUD_TEST_REDIS_URL`)
serve every test running in parallel and must never be restarted; a test
whose subject is an outage starts its own peer here, on a free loopback port
in a temporary folder, and removes it afterwards.

- `PrivatePostgres`: `initdb` (trust authentication, no fsync: a crash of the
  server process loses nothing, only a crash of the machine would), listening
  on 127.0.0.1 and on a unix socket in its folder. As root (CI containers),
  `initdb`, `pg_ctl` and `postgres` run as the `postgres` user through
  `runuser`: PostgreSQL refuses to run as root.
- `PrivateRedis`: `redis-server --save "" --appendonly no`. `stop()` shuts it
  down with `SHUTDOWN SAVE` (a maintenance stop keeps the data, as a
  production Redis with persistence would); `stop(keep_data=False)` loses it.

Missing binaries skip the test, or fail it under `PRINTCLOUD_REQUIRE_PEERS=1`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, require_command, require_peer

PG_BIN_ENV = "PRINTCLOUD_PG_BIN"
_PG_USER = "postgres"


def _pg_bin() -> Path:
    """The folder of `initdb`/`pg_ctl`: $PRINTCLOUD_PG_BIN, the PATH, or Debian's newest."""
    if os.environ.get(PG_BIN_ENV):
        return Path(os.environ[PG_BIN_ENV])
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent  # Debian links them from a versioned folder
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    require_peer(bool(versions), "PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return Path(versions[-1]).parent


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    runuser = require_command("runuser")
    return [runuser, "-u", _PG_USER, "--", *argv]


class PrivatePostgres:
    """A PostgreSQL cluster of its own; `url` names database `printcloud` in it."""

    def __init__(self, *, database: str = "printcloud") -> None:
        bin_dir = _pg_bin()
        self.initdb = bin_dir / "initdb"
        self.pg_ctl = bin_dir / "pg_ctl"
        require_peer(
            self.initdb.exists() and self.pg_ctl.exists(),
            f"PostgreSQL server binaries are not in {bin_dir}",
        )
        self.root = Path(tempfile.mkdtemp(prefix="pc-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.database = database
        try:
            self._create()
        except BaseException:
            self.cleanup()
            raise

    def _create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, user=_PG_USER, group=_PG_USER)
        self._run(
            [
                str(self.initdb),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ]
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# printcloud test peer\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "max_connections = 300\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
            )
        self.start()
        import psycopg

        admin = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            _as_postgres(argv),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                f"{self.server_log()}"
            )
        return done

    def server_log(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except (FileNotFoundError, PermissionError):
            return ""

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run([str(self.pg_ctl), "-D", str(self.data), "-l", str(self.log), "-w", "start"])

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server: `fast` disconnects every client (a clean restart),
        `immediate` is a crash (the next start replays the WAL)."""
        self._run([str(self.pg_ctl), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def restart(self, *, mode: str = "fast") -> None:
        self.stop(mode=mode)
        self.start()

    @property
    def running(self) -> bool:
        done = self._run([str(self.pg_ctl), "-D", str(self.data), "status"], check=False)
        return done.returncode == 0

    def cleanup(self) -> None:
        if self.data.exists() and self.running:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A redis-server of its own on a free port; `stop()` and `start()` keep the port."""

    def __init__(self) -> None:
        self.binary = require_command("redis-server")
        self.root = Path(tempfile.mkdtemp(prefix="pc-redis-"))
        self.port = free_port()
        self.log = self.root / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 30) -> None:
        import redis

        if self.process is not None and self.process.poll() is None:
            return
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.root),
                    "--daemonize",
                    "no",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log.read_text()[-2000:]}")
            try:
                if client.ping():
                    client.close()
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self, *, keep_data: bool = True) -> None:
        """Shut the server down; with `keep_data` it writes its data first (SHUTDOWN SAVE)
        and the next `start()` loads it."""
        import redis

        if self.process is None:
            return
        if self.process.poll() is None:
            # no retries: the server closing the connection is the answer
            client = redis.Redis(
                host="127.0.0.1", port=self.port, socket_connect_timeout=1, retry=None
            )
            with contextlib.suppress(redis.ConnectionError):
                client.shutdown(save=keep_data, nosave=not keep_data)
            try:
                self.process.wait(timeout=20)
                if not keep_data:
                    (self.root / "dump.rdb").unlink(missing_ok=True)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.cleanup()


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_peer() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster this test may restart (never the shared one)."""
    with private_postgres() as server:
        yield server


@pytest.fixture
def redis_peer() -> Iterator[PrivateRedis]:
    """A redis-server this test may stop and start (never the shared one)."""
    with private_redis() as server:
        yield server
