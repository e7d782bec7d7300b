"""Throwaway local servers for the team tests and benchmarks (not used by the library).

- :class:`LocalPostgres`: a PostgreSQL server in a temporary folder on a free loopback
  port, made with the server's own ``initdb`` and ``pg_ctl`` (found with ``pg_config
  --bindir``, in ``/usr/lib/postgresql/*/bin`` or on ``PATH``). As root, the server runs
  as the ``postgres`` user (``runuser``), since PostgreSQL refuses to run as root.
- :class:`LocalS3`: moto's S3-compatible server (``python -m moto.server``, moto from
  PyPI) on a free loopback port, in a process of its own.

Both raise :class:`ServerUnavailable` (with the reason) when the parts are missing, so
tests can skip with that reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["ServerUnavailable", "LocalPostgres", "LocalS3", "find_pg_bindir", "free_port"]


class ServerUnavailable(RuntimeError):
    """A local test server cannot be started here (the reason is the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise ServerUnavailable(f"the server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerUnavailable(f"nothing listens on port {port} after {timeout:.0f} s")


def find_pg_bindir() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), or None."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass

    def version(p: str) -> float:
        try:
            return float(Path(p).parent.name)
        except ValueError:
            return 0.0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version,
                                           reverse=True)]  # fmt: skip
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    return None


class LocalPostgres:
    """A PostgreSQL server for tests: trust authentication, user ``modelgit``."""

    user = "modelgit"

    def __init__(self, fsync: bool = True) -> None:
        self.bindir = find_pg_bindir()
        if self.bindir is None:
            raise ServerUnavailable(
                "PostgreSQL server programs (initdb, pg_ctl) not found: install the Debian "
                "package 'postgresql'"
            )
        self.fsync = fsync
        self.port = 0
        self.base: Path | None = None
        self._prefix: list[str] = []
        self._count = 0

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [*self._prefix, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ServerUnavailable(
                f"{Path(args[0]).name} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-800:]}"
            )

    def start(self) -> LocalPostgres:
        self.base = Path(tempfile.mkdtemp(prefix="modelgit-pg-"))
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable("running as root and there is no 'postgres' user") from None
            runuser = shutil.which("runuser")
            if runuser is None:
                raise ServerUnavailable("running as root and runuser is not available")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
            self._prefix = [runuser, "-u", "postgres", "--"]
        data = self.base / "data"
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-U", self.user,
                  "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync")  # fmt: skip
        self.port = free_port()
        opts = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            f"-c max_connections=400 -c fsync={'on' if self.fsync else 'off'}"
        )
        self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.base / "log"),
                  "-w", "-t", "60", "-o", opts, "start")  # fmt: skip
        return self

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def new_database(self, prefix: str = "mg") -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._count += 1
        name = f"{prefix}_{os.getpid()}_{self._count}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.base is None:
            return
        try:
            if self.port:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), "-m",
                          "immediate", "-w", "stop")  # fmt: skip
        except (ServerUnavailable, subprocess.SubprocessError):
            pass
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalS3:
    """moto's S3 server on loopback; credentials are dummies."""

    def __init__(self) -> None:
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalS3:
        try:
            import moto.server  # noqa: F401
        except ImportError:
            raise ServerUnavailable("moto (with its server extra) is not installed") from None
        self.port = free_port()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_port(self.port, 60, self._proc)
        except ServerUnavailable:
            self.stop()
            raise
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients (s3fs, boto3) of this server."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint, "key": "testing", "secret": "testing"}

    def new_bucket(self, name: str) -> str:
        import boto3

        client = boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
            aws_secret_access_key="testing", region_name="us-east-1",
        )  # fmt: skip
        client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(1)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
