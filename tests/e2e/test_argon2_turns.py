"""End to end: gunicorn's master names one file for its workers to take turns at Argon2 on (accounts.pins),
and removes it when it stops. Runs on PostgreSQL when the suite does, else on a SQLite file."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from django.db import connection

from bench.servers import AUTH_TOKEN, PUBLIC_URL, Server, fresh_database, manage, production_env
from phone.call import SimulatedCall, scripted
from phone.transport import OverHttp

pytestmark = pytest.mark.e2e


def _open_files(pid: int) -> set[str]:
    found = set()
    for link in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            found.add(str(link.readlink()))
    return found


def test_the_workers_of_an_instance_take_turns_on_one_file_which_goes_with_the_master(tmp_path):
    kind = "postgres" if connection.vendor == "postgresql" else "sqlite"
    with fresh_database(kind) as url:
        env = {**production_env(url), "TMPDIR": str(tmp_path)}
        env.pop("ARGON2_LOCK_FILE", None)
        manage(env, "migrate", "--noinput")
        server = Server(env).start()
        try:
            (lock_file,) = tmp_path.glob("myibot-argon2-*.lock")  # the master's, one for the instance
            # A member ID and a PIN that match no account: the PIN is hashed all the same (a miss takes as long).
            call = SimulatedCall(PUBLIC_URL, AUTH_TOKEN, OverHttp(server.url), caller="+12022100077")
            call.place(scripted(["123456", "4682"]))
            _master, *workers = server.pids()
            assert any(str(lock_file) in _open_files(pid) for pid in workers), "the worker that hashed took its turn"
        finally:
            server.stop()
        assert not lock_file.exists(), "removed by the master that made it"
