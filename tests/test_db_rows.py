"""SQL built once (myibot/db.py, CallSession.find) reads and writes exactly what the ORM would."""

from __future__ import annotations

import psycopg
import pytest
from django.db import DataError, OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account, Transfer
from ivr.models import CallSession
from myibot.db import ReadAhead, fetch_all, update_later, update_where
from tests.conftest import postgres_only, second_connection

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict[str, object]:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.fixture
def call() -> CallSession:
    account = Account.objects.create(
        member_id="246801",
        home_number="+12025001234",
        pin_hash="x",
        status=Account.Status.ACTIVE,
        verified_at=timezone.now(),
        balance_cents=1234,
    )
    return CallSession.objects.create(
        call_sid="CA" + "7" * 32,
        caller="+12025001234",
        caller_trusted=True,
        language="es",
        step="menu",
        prompt_number=7,
        scratch={"amount_cents": 500, "nested": ["a", 1]},
        account=account,
        last_notices={"notices": ["Hola."], "repeat": False},
        ended=None,
    )


@pytest.mark.parametrize("locked", [False, True])
def test_find_reads_the_call_and_its_account_as_the_orm_does(call, locked, django_assert_num_queries):
    with transaction.atomic():
        found = CallSession.find(call.call_sid, locked=locked)
    expected = CallSession.objects.select_related("account").get(pk=call.pk)
    assert _fields(found) == _fields(expected)
    assert found.scratch == {"amount_cents": 500, "nested": ["a", 1]}
    assert found.caller_trusted is True and found.ended is None and timezone.is_aware(found.updated)
    # The account came with the call, as select_related brings it: no second query.
    assert found._state.adding is False and found._state.db == "default"
    with django_assert_num_queries(0):
        account = found.account
    assert _fields(account) == _fields(expected.account)


def test_find_a_call_signed_out_and_one_unknown(call):
    CallSession.objects.filter(pk=call.pk).update(account=None)
    found = CallSession.find(call.call_sid, locked=False)
    assert found.account is None and found.account_id is None
    assert CallSession.find("CA" + "0" * 32, locked=False) is None


def test_update_where_writes_the_fields_only_where_the_condition_holds(call):
    call.step, call.prompt_number, call.scratch = "balance", 8, {"said": "ñ"}
    call.ended = timezone.now()
    assert update_where(call, ["step", "prompt_number", "scratch", "ended"], where={"prompt_number": 6}) == 0
    assert CallSession.objects.get(pk=call.pk).step == "menu"
    assert update_where(call, ["step", "prompt_number", "scratch", "ended"], where={"prompt_number": 7}) == 1
    stored = CallSession.objects.get(pk=call.pk)
    assert (stored.step, stored.prompt_number, stored.scratch, stored.ended) == (
        "balance",
        8,
        {"said": "ñ"},
        call.ended,
    )
    assert stored.language == "es"  # a field not named is left alone
    call.account = None
    assert update_where(call, ["account"]) == 1
    assert CallSession.objects.get(pk=call.pk).account_id is None


def test_update_later_writes_the_values_as_they_were_when_it_was_asked_for(call):
    """The write-back runs after the answer is sent (myibot.after_answer): what it writes is the state answered."""
    call.step, call.scratch = "balance", {"amount_cents": 2500}
    update = update_later(call, ["step", "scratch"], where={"prompt_number": 7})
    call.step, call.scratch["amount_cents"] = "history", 9900  # changed after: not written
    assert CallSession.objects.get(pk=call.pk).step == "menu", "nothing until it runs"
    assert update() == 1
    stored = CallSession.objects.get(pk=call.pk)
    assert (stored.step, stored.scratch) == ("balance", {"amount_cents": 2500})


@postgres_only("a row lock held from a second connection (FOR UPDATE NOWAIT): SQLite has no row locks")
@pytest.mark.django_db(transaction=True)
def test_find_locked_holds_the_call_row_until_the_transaction_ends(call):
    with second_connection() as other:
        with transaction.atomic():
            CallSession.find(call.call_sid, locked=True)
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("SELECT 1 FROM ivr_callsession WHERE id = %s FOR UPDATE NOWAIT", [call.pk])
            # Only the call is locked, never its account (FOR UPDATE OF the call).
            other.execute("SELECT 1 FROM accounts_account WHERE id = %s FOR UPDATE NOWAIT", [call.account_id])
        other.execute("SELECT 1 FROM ivr_callsession WHERE id = %s FOR UPDATE NOWAIT", [call.pk])


@postgres_only("asynchronous commit (synchronous_commit) is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_an_asynchronous_write_back_leaves_every_other_commit_durable(call):
    def synchronous_commit() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    call.step = "balance"
    assert update_where(call, ["step"], where={"prompt_number": 7}, asynchronous_commit=True) == 1
    assert CallSession.objects.get(pk=call.pk).step == "balance"
    assert synchronous_commit() == "on"  # only that statement's own transaction committed asynchronously
    with transaction.atomic():
        call.step = "menu"
        assert update_where(call, ["step"], asynchronous_commit=True) == 1
        assert synchronous_commit() == "on"  # inside a transaction: ignored, its commit stays durable
    assert CallSession.objects.get(pk=call.pk).step == "menu"
    connection.set_autocommit(False)  # a transaction opened without atomic(): ignored too
    try:
        call.step = "history"
        assert update_where(call, ["step"], asynchronous_commit=True) == 1
        assert synchronous_commit() == "on"
        connection.commit()
    finally:
        connection.set_autocommit(True)
    assert CallSession.objects.get(pk=call.pk).step == "history"


@postgres_only("asynchronous commit (synchronous_commit) is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_only_steps_that_move_no_money_and_count_no_pin_commit_asynchronously(phone, account, recipient):
    from django.test.utils import CaptureQueriesContext

    def updates_of_the_call(keys: str) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            phone.press(keys)
        return [
            query["sql"] for query in queries.captured_queries if query["sql"].startswith('UPDATE "ivr_callsession"')
        ]

    phone.dial()
    assert ["set_config" not in sql for sql in updates_of_the_call("3971")] == [True]  # the PIN: counted, durable
    assert ["set_config" in sql for sql in updates_of_the_call("2")] == [True]  # send money: a menu choice
    assert ["set_config" in sql for sql in updates_of_the_call("1")] == [True]  # an amount
    assert ["set_config" in sql for sql in updates_of_the_call("246810")] == [True]  # a recipient
    assert ["set_config" not in sql for sql in updates_of_the_call("1")] == [True]  # confirmed: money moved, durable
    assert Transfer.objects.filter(account=account, amount_cents=100).count() == 1


@postgres_only("prepared statements and their plans are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_steps_statements_are_prepared_at_their_second_run_and_planned_once(call):
    """prepare_threshold 1 and plan_cache_mode force_generic_plan: planned once per connection, for any values.

    Behind a pooler in transaction mode (DATABASE_POOLER=transaction, as the PgBouncer stage of .ci/run
    runs this) nothing is prepared, and the session is left as the server has it.
    """
    from django.db import connections

    prepared = connection.settings_dict["OPTIONS"].get("prepare_threshold") is not None
    connections["default"].close()  # a new session, as a gunicorn thread opens
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone()[0] == ("force_generic_plan" if prepared else "auto")
    for _ in range(3):
        assert CallSession.find(call.call_sid, locked=False).pk == call.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%ivr_callsession%call_sid%"],
        )
        # Prepared at the second run; that run and the third on its one generic plan, none planned for its values.
        assert cursor.fetchall() == ([(2, 0)] if prepared else [])


@postgres_only("the role's own settings in the database (pg_db_role_setting)")
@pytest.mark.django_db(transaction=True)
def test_every_new_session_of_the_role_starts_with_the_time_limits_and_each_start_sets_them_again(settings):
    """Never libpq's options, which PgBouncer refuses: the role's settings hold however the app connects."""
    import psycopg
    from django.db import connections

    from myibot.postgresql import timeouts

    assert (
        timeouts.role_settings(connection)
        == timeouts.wanted()
        == {
            "lock_timeout": f"{settings.DB_LOCK_TIMEOUT_MS}ms",
            "statement_timeout": f"{settings.DB_STATEMENT_TIMEOUT_MS}ms",
        }
    )
    direct = connections["direct"].settings_dict

    def new_session_limits() -> tuple[str, str]:
        with psycopg.connect(
            host=direct["HOST"],
            port=direct["PORT"] or 5432,
            user=direct["USER"],
            password=direct["PASSWORD"],
            dbname=connection.settings_dict["NAME"],
        ) as other:
            return (
                other.execute("SHOW lock_timeout").fetchone()[0],
                other.execute("SHOW statement_timeout").fetchone()[0],
            )

    assert new_session_limits() == ("3s", "4s")
    settings.DB_LOCK_TIMEOUT_MS = 2500
    try:
        timeouts.ensure()  # what gunicorn's master does at each start
        assert timeouts.role_settings(connection)["lock_timeout"] == "2500ms"
        assert new_session_limits() == ("2500ms", "4s")
    finally:
        settings.DB_LOCK_TIMEOUT_MS = 3000
        timeouts.ensure()
    assert new_session_limits() == ("3s", "4s")


@postgres_only("asynchronous commit (synchronous_commit) is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_new_calls_row_and_the_hours_count_commit_asynchronously_a_restart_durably(phone, account):
    from django.test.utils import CaptureQueriesContext

    from accounts.models import HourlyActivity

    def writes(action) -> list[bool]:
        """Each INSERT or UPDATE the action made: whether it committed without waiting for the disk."""
        with CaptureQueriesContext(connection) as queries:
            action()
        return [
            "set_config" in query["sql"]
            for query in queries.captured_queries
            if query["sql"].startswith(("INSERT", "UPDATE"))
        ]

    assert writes(phone.dial) == [True, True]  # the call's row with its first prompt, then the hour's count
    # Twilio's retry of the first webhook: the insert finds the call there and writes nothing; the restart,
    # under the call's lock, commits durably, and the call is not counted twice.
    assert writes(phone.dial) == [True, False]
    assert CallSession.objects.filter(call_sid=phone.call_sid).count() == 1
    assert HourlyActivity.objects.get(kind="call").count == 1


# A read sent ahead (myibot.db.ReadAhead) ------------------------------------------------------------------


def test_a_read_ahead_is_not_sent_on_sqlite_where_a_read_waits_for_nothing(call):
    if connection.vendor == "postgresql":
        pytest.skip("on PostgreSQL it is sent: the tests below")
    assert ReadAhead.send("SELECT 1", []) is None


@postgres_only("a statement on the wire while this process goes on: SQLite answers inside it")
def test_a_read_ahead_is_on_the_wire_until_its_rows_are_taken_and_they_are_a_reads(call):
    sql = "SELECT call_sid, prompt_number FROM ivr_callsession WHERE call_sid = %s"
    ahead = ReadAhead.send(sql, [call.call_sid])
    assert connection.connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE, "sent, not done"
    with CaptureQueriesContext(connection) as counted:
        assert ahead.rows() == [(call.call_sid, 7)] == fetch_all(sql, [call.call_sid])
    # Counted as Django counts a query (the query budgets hold wherever the read was sent).
    assert len(counted) == 2 and call.call_sid in counted[0]["sql"]
    with pytest.raises(RuntimeError):
        ahead.rows()
    ahead.discard()  # taken: nothing to drop


@postgres_only("a statement on the wire while this process goes on: SQLite answers inside it")
def test_a_read_ahead_dropped_leaves_the_connection_free_for_the_next_statement(call):
    ahead = ReadAhead.send("SELECT pg_sleep(0.05), %s::text", ["x"])
    ahead.discard()
    ahead.discard()
    assert connection.connection.pgconn.transaction_status != psycopg.pq.TransactionStatus.ACTIVE
    assert CallSession.find(call.call_sid, locked=False).pk == call.pk


@postgres_only("a statement on the wire while this process goes on: SQLite answers inside it")
@pytest.mark.django_db(transaction=True)
def test_a_read_ahead_that_fails_raises_as_django_does_when_taken_and_quietly_when_dropped(call):
    failing = ReadAhead.send("SELECT 1 / (%s - 1)", [1])
    with pytest.raises(DataError):  # Django's, not psycopg's: the webhook's error handling knows it
        failing.rows()
    ReadAhead.send("SELECT 1 / (%s - 1)", [1]).discard()
    # The statement's own error, in autocommit: the connection goes on.
    assert CallSession.find(call.call_sid, locked=False).pk == call.pk


@postgres_only("a statement on the wire while this process goes on: SQLite answers inside it")
@pytest.mark.django_db(transaction=True)
def test_a_read_ahead_over_the_statement_timeout_is_a_timeout_the_webhook_recognises(call):
    (limit,) = fetch_all("SELECT current_setting('statement_timeout')", [])[0]
    fetch_all("SELECT set_config('statement_timeout', '50ms', false)", [])
    try:
        slow = ReadAhead.send("SELECT pg_sleep(%s)", [1])
        with pytest.raises(OperationalError, match="canceling statement"):
            slow.rows()
    finally:
        fetch_all("SELECT set_config('statement_timeout', %s, false)", [limit])


@postgres_only("a statement on the wire while this process goes on: SQLite answers inside it")
@pytest.mark.django_db(transaction=True)
def test_a_read_ahead_whose_connection_is_gone_is_dropped_quietly(call):
    """Whatever became of the connection, dropping the rows never turns a refusal or an apology into a 500."""
    ahead = ReadAhead.send("SELECT %s::text", ["x"])
    connection.connection.close()
    ahead.discard()
    connection.close()  # Django's own, as at the end of the request; the next one connects anew
    assert CallSession.find(call.call_sid, locked=False).pk == call.pk
