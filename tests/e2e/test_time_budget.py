"""Inside Twilio's 15 s (docs/TIME_BUDGET.md): with the database blocked, every webhook answers in time,
through gunicorn: the calm apology, with nothing it was doing committed, or (a step that moves no money,
whose write-back comes after its answer) its own answer."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.db import connection

from bench.servers import Server, manage, production_env
from tests.e2e.calls import FUNDED, place
from tests.e2e.conftest import RECIPIENT

pytestmark = pytest.mark.e2e

# Twilio gives up at 15 s; a blocked step must answer well before.
ANSWERED_WITHIN_MS = 12_000
APOLOGY = "temporarily unavailable"


@pytest.fixture(scope="module")
def server(database_url):
    running = Server(production_env(database_url)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def funded(server, database_url):
    import re

    _call, heard = place([server], ["#", "1", "200001", "3971", "3971", "2"], caller=FUNDED)
    code = re.search(r"registration code is: ((?:\d, ){5}\d)", heard).group(1).replace(", ", "")
    manage(production_env(database_url), "verify_code", code)
    manage(production_env(database_url), "deposit", FUNDED, "100")
    return FUNDED


@contextlib.contextmanager
def held(database_url: str, sql: str = "", params: tuple = ()) -> Iterator[None]:
    """Another connection holds a lock as long as the block runs: a row (PostgreSQL), the write lock (SQLite)."""
    if database_url.startswith("sqlite"):
        other = sqlite3.connect(urlsplit(database_url).path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.rollback()
            other.close()
        return
    import psycopg

    with psycopg.connect(database_url) as other:
        other.execute(sql, params)
        try:
            yield
        finally:
            other.rollback()


def query(database_url: str, sql: str) -> tuple:
    if database_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(urlsplit(database_url).path)) as db:
            return db.execute(sql).fetchone()
    import psycopg

    with psycopg.connect(database_url) as db:
        return db.execute(sql).fetchone()


def locking_at(prompt_number: int, lock: contextlib.AbstractContextManager, keys: list[str]):
    """Scripted keys; before answering prompt prompt_number (0-based), take the lock (kept till the call ends)."""
    stack = contextlib.ExitStack()
    remaining = iter(keys)
    seen = [0]

    def press(prompt) -> str | None:
        if seen[0] == prompt_number:
            stack.enter_context(lock)
        seen[0] += 1
        return next(remaining, None)

    return press, stack


def blocked_call(server, keys, lock_at: int, lock) -> tuple[float, str]:
    press, stack = locking_at(lock_at, lock, keys)
    with stack:
        call, heard = place([server], press, caller=FUNDED, failures_expected=True)
    apology = next(answer for _url, answer in call.answers if APOLOGY in answer.body)
    return apology.milliseconds, heard


def test_a_sign_in_blocked_on_its_account_answers_the_apology_in_time(server, funded, database_url):
    before = query(database_url, "SELECT failed_pin_count, lock_count FROM accounts_account WHERE member_id = '200001'")
    lock = held(database_url, "SELECT id FROM accounts_account WHERE member_id = %s FOR UPDATE", ("200001",))
    # The PIN prompt (prompt 0) is answered while another connection holds the account.
    milliseconds, heard = blocked_call(server, ["1357"], 0, lock)
    assert APOLOGY in heard
    assert milliseconds < ANSWERED_WITHIN_MS
    after = query(database_url, "SELECT failed_pin_count, lock_count FROM accounts_account WHERE member_id = '200001'")
    assert after == before, "the wrong PIN was not counted: the step rolled back"


def test_a_menu_step_blocked_on_its_call_answers_at_once_and_the_next_entry_starts_again(server, funded, database_url):
    """A step that moves no money answers before writing its call back (myibot.after_answer): blocked, the
    caller still hears the balance, not the apology, and the write-back gives up after the answer. The next
    entry, a prompt ahead of what is stored, waits a moment for it, then starts again: nothing is left in
    dead air, and every answer is in time."""
    lock = held(database_url, "SELECT id FROM ivr_callsession WHERE caller = %s FOR UPDATE", (FUNDED,))
    press, stack = locking_at(1, lock, ["3971", "1", "2"])
    with stack:
        call, heard = place([server], press, caller=FUNDED, failures_expected=True)
    answers = {urlsplit(url).path.rsplit("/", 1)[-1]: answer for url, answer in call.answers}
    assert "Your balance is" in answers["menu"].body
    assert "Let's start again." in answers["balance"].body
    assert APOLOGY not in heard
    assert max(answer.milliseconds for answer in answers.values()) < ANSWERED_WITHIN_MS


def test_a_confirmation_blocked_on_its_account_sends_nothing_and_says_so_in_time(server, funded, database_url):
    transfers = query(database_url, "SELECT count(*) FROM accounts_transfer")
    lock = held(database_url, "SELECT id FROM accounts_account WHERE member_id = %s FOR UPDATE", ("200001",))
    milliseconds, heard = blocked_call(server, ["3971", "2", "25#", RECIPIENT, "1"], 4, lock)
    assert APOLOGY in heard
    assert "is submitted" not in heard
    assert milliseconds < ANSWERED_WITHIN_MS
    assert query(database_url, "SELECT count(*) FROM accounts_transfer") == transfers


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: a trigger that slows COMMIT")
@pytest.mark.parametrize("commit_seconds", [1, 11], ids=["slow commit", "commit past the deadline"])
def test_a_transfer_slowed_at_commit_is_either_made_with_its_code_or_not_made_at_all(
    server, funded, database_url, commit_seconds
):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(f"""
            CREATE OR REPLACE FUNCTION e2e_slow_commit() RETURNS trigger AS $$
            BEGIN PERFORM pg_sleep({commit_seconds}); RETURN NULL; END $$ LANGUAGE plpgsql;
            DROP TRIGGER IF EXISTS e2e_slow_commit ON accounts_transfer;
            CREATE CONSTRAINT TRIGGER e2e_slow_commit AFTER INSERT ON accounts_transfer
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION e2e_slow_commit();
        """)
    try:
        transfers = query(database_url, "SELECT count(*) FROM accounts_transfer")[0]
        call, heard = place([server], ["3971", "2", "5#", RECIPIENT, "1", "2"], caller=FUNDED, failures_expected=True)
    finally:
        with psycopg.connect(database_url, autocommit=True) as db:
            db.execute("DROP TRIGGER IF EXISTS e2e_slow_commit ON accounts_transfer")
    confirm = next(answer for url, answer in call.answers if "/step/send_confirm" in url)
    assert confirm.status == 200 and confirm.milliseconds < 15_000, "inside Twilio's 15 s"
    made = query(database_url, "SELECT count(*) FROM accounts_transfer")[0] - transfers
    # Never a committed transfer behind an apology, never a code for a transfer that is not there.
    if made:
        assert made == 1 and "Your confirmation code is:" in heard and APOLOGY not in heard
    else:
        assert APOLOGY in heard and "Your confirmation code is:" not in heard
