"""A step's read goes to the database before the request's signature is checked (ivr.machine.read_call_ahead).

PostgreSQL answers while the signature is checked; the step takes the rows when it needs the call. The read is
the one the step would make (the same statement, the same questions); a step that locks the call reads nothing
ahead; a request that is not Twilio's gets its 403 only once the rows are dropped; and a request that carries no
signature at all makes no read.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ivr import decorators, machine
from ivr.models import CallSession
from ivr.twiml import UNAVAILABLE
from tests.conftest import postgres_only, second_connection, sent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_double")]

ON_THE_WIRE = "a statement on the wire while this process goes on: SQLite answers inside it"


def _in_flight() -> bool:
    return connection.connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE


@pytest.fixture
def checked(monkeypatch) -> list[bool]:
    """Whether a statement was on the wire each time a request's signature was checked."""
    seen: list[bool] = []
    check = decorators.signature_refusal

    def watched(request):
        seen.append(connection.vendor == "postgresql" and _in_flight())
        return check(request)

    monkeypatch.setattr(decorators, "signature_refusal", watched)
    return seen


@postgres_only(ON_THE_WIRE)
@pytest.mark.parametrize(
    "walk",
    [
        # The balance (with its card money: CallSession.find_with), again, the menu.
        [("1", "Your balance is 100 dollars"), ("1", "Your balance is"), ("2", "Main menu")],
        # The amount (with what is held and today's room), the recipient by the code typed.
        [("2", "How many dollars"), ("25", "Enter the 6-digit code"), ("246810", "Jane Doe")],
    ],
    ids=["balance and menu", "amount and recipient"],
)
def test_a_step_is_read_while_its_signature_is_checked_with_what_its_answer_asks(signed_in, recipient, checked, walk):
    for keys, heard in walk:
        with CaptureQueriesContext(connection) as answering:
            unsent = signed_in.unsent(keys)
        # One read before the answer, as ever.
        assert len(answering) == 1, [query["sql"][:60] for query in answering]
        assert heard in unsent.content.decode()
        sent(unsent)
        signed_in.twiml(unsent)
    assert checked == [True, True, True]


def test_a_step_that_locks_the_call_reads_nothing_ahead(phone, account):
    phone.dial()
    # The PIN: counted and checked under the call's lock, in a transaction.
    assert machine.read_call_ahead(call_sid=phone.call_sid, step_name="entry", keys="3971") is None
    assert machine.read_call_ahead(call_sid=phone.call_sid, step_name="no such step", keys="1") is None


def test_a_step_read_ahead_only_where_the_database_answers_elsewhere(signed_in):
    sent_ahead = machine.read_call_ahead(call_sid=signed_in.call_sid, step_name="menu", keys="3")
    if connection.vendor != "postgresql":
        assert sent_ahead is None  # SQLite answers inside this process: nothing to overlap
        return
    assert sent_ahead.reads(signed_in.call_sid, (), entry="3")
    assert not sent_ahead.reads(signed_in.call_sid, (), entry="1"), "another entry asks another question"
    assert sent_ahead.call().pk == CallSession.objects.get(call_sid=signed_in.call_sid).pk
    assert not sent_ahead.reads(signed_in.call_sid, (), entry="3"), "taken once"


@postgres_only(ON_THE_WIRE)
def test_a_request_that_is_not_twilios_gets_403_and_leaves_the_connection_free(signed_in, checked):
    action = signed_in.last.gather.get("action")
    refused = signed_in.post(
        action, {"Digits": "1"}, signed=False, extra={"HTTP_X_TWILIO_SIGNATURE": "bm90IHR3aWxpbw=="}
    )
    assert refused.status_code == 403
    assert checked == [True], "the read went ahead of the check that refused it"
    assert not _in_flight(), "and was dropped before the 403"
    # The connection is free, and the call where it was: the caller's own next request is answered.
    assert "Your balance is" in signed_in.press("1").text


def test_a_request_without_a_signature_makes_no_read(signed_in, checked):
    action = signed_in.last.gather.get("action")
    with CaptureQueriesContext(connection) as queries:
        refused = signed_in.post(action, {"Digits": "1"}, signed=False)
    assert refused.status_code == 403
    assert len(queries) == 0


@postgres_only(ON_THE_WIRE)
def test_a_read_ahead_that_finds_the_write_back_late_is_read_again(signed_in, checked, monkeypatch):
    """The quick caller whose prompt's write-back has not landed: the rows read ahead say so, the step waits
    and reads again the usual way (the rows read ahead are taken once, by the first attempt)."""
    unsent = signed_in.unsent("1")  # the balance, its write-back not yet run
    signed_in.twiml(unsent)
    reads = []
    find = CallSession.find_with

    def counted(*args, **kwargs):
        reads.append(args)
        if len(reads) == 1:
            sent(unsent)  # the write-back lands while the quick request waits
        return find(*args, **kwargs)

    monkeypatch.setattr(CallSession, "find_with", counted)
    assert "Your balance is" in signed_in.press("1").text  # hear it again, answered at the new prompt
    assert len(reads) == 1, "read ahead first (stale), then once the usual way"
    assert checked[-1] is True


def test_the_time_budget_counts_from_the_request_not_from_after_its_read_ahead(signed_in, settings, monkeypatch):
    """A read ahead that had to wait (a connect, a slow server) spends the webhook's time: no query starts past
    the deadline counted from the request's arrival, and the caller hears the apology in time."""
    settings.WEBHOOK_DEADLINE_SECONDS = 0.05

    def slow(**kwargs):
        time.sleep(0.1)  # and sends nothing: the step reads the call itself, past the deadline
        return None

    monkeypatch.setattr(machine, "read_call_ahead", slow)
    assert str(UNAVAILABLE) in signed_in.press("1").text


@postgres_only("a connection PostgreSQL ends while it is idle (pg_terminate_backend)")
@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_while_idle_is_opened_anew_before_the_read_goes(signed_in, checked):
    """As Django's own cursor does at a request's first query (CONN_HEALTH_CHECKS): a restart, a failover or an
    idle timeout costs the caller a new connection, not the apology."""
    pid = connection.connection.info.backend_pid
    with second_connection() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:  # the server's goodbye reaches the socket
        time.sleep(0.01)
    connection.health_check_done = False  # what Django does as a request starts
    assert "Your balance is 100 dollars" in signed_in.press("1").text
    assert connection.connection.info.backend_pid != pid
    assert checked == [True], "read ahead, on the new connection"
