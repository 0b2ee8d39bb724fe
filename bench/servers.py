"""Real gunicorn servers with production settings, on a fresh database: for the benchmark and the e2e tests."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_URL = "https://myibot.e2e.test"
AUTH_TOKEN = "e2e-twilio-auth-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def fresh_database(kind: str):
    """A new, empty database: PostgreSQL on the local server, or a SQLite file."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/e2e.sqlite3"
        return
    import psycopg

    admin_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    name = f"myibot_e2e_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def same_database(url: str, like: str) -> str:
    """url, naming the database `like` names: the direct road to a database reached through a pooler."""
    return urlunsplit(urlsplit(url)._replace(path=urlsplit(like).path))


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    if env.get("DATABASE_DIRECT_URL") and database_url.startswith("postgres"):
        # Behind a pooler (DATABASE_POOLER): the direct URL names the server; the database is this one.
        env["DATABASE_DIRECT_URL"] = same_database(env["DATABASE_DIRECT_URL"], database_url)
    env.update(
        DEBUG="false",
        SECRET_KEY="e2e-" + secrets.token_urlsafe(40),
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        BASE_URL=PUBLIC_URL,
        PIN_PEPPER="e2e-pepper",
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="myibot.settings",
        # No metrics server unless a test asks for one on a port of its own:
        # several servers at once must not fight over the default port.
        # As the image runs it (Dockerfile): Argon2's block in huge pages.
        **{"LOG_LEVEL": "WARNING", "METRICS_PORT": "", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1", **extra},
    )
    return env


def memory_kb(pids: list[int]) -> tuple[int, int]:
    """The processes' resident set size and proportional set size, summed (kB).

    RSS counts a page the master shares with its workers once in each of them; PSS splits it among the
    processes sharing it, so the sum is what the machine really holds for them (what a Fly machine's
    memory must fit).
    """
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return rss, pss


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


@dataclass
class Server:
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *gunicorn_args: str) -> Server:
        self.log = Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{self.port}",
                *gunicorn_args,
                "myibot.wsgi",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log.read_text()}")
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2)
                return self
            except OSError as error:
                if getattr(error, "code", None) == 503:
                    return self  # up, with the database unreachable
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def pids(self) -> list[int]:
        """The master and its workers."""
        if not self.process:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [self.process.pid, *map(int, children.read_text().split())] if children.exists() else [self.process.pid]
