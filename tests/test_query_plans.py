"""Every query on a hot path uses an index (PostgreSQL's EXPLAIN), so a step costs the same at a million rows.

With sequential scans turned off, the planner still picks one where no index
can serve the query: a "Seq Scan" in the plan is a query that would slow down
as the tables grow.
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import psycopg.sql
import pytest
from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts import dashboard, selectors
from accounts.models import (
    Account,
    ConfirmationCode,
    HourlyActivity,
    LedgerEntry,
    Recipient,
    SharedLine,
    SignInFailure,
    SignInSpray,
    Transfer,
)
from ivr.models import CallSession, _find_sql, _find_with_sql
from myibot.db import union_of_shapes
from payments import holds
from tests.conftest import postgres_only

pytestmark = [postgres_only("it reads PostgreSQL's query plans (EXPLAIN)"), pytest.mark.django_db]


def hot_queries():
    now = timezone.now()
    account = Account(pk=1)
    return {
        "sign-in by member ID": Account.objects.select_for_update().filter(member_id="123456"),
        "sign-in from the home number": Account.objects.filter(home_number="+12026230001").annotate(
            shared=Exists(SharedLine.objects.filter(phone_number=OuterRef("home_number"))),
            spray=Exists(SignInSpray.objects.filter(until__gt=now)),
        ),
        # The SQL CallSession.find builds, as a step runs it.
        "a step: the call and its account": (_find_sql(locked=False), ["CA" + "0" * 32]),
        "a locked step: the call and its account": (_find_sql(locked=True), ["CA" + "0" * 32]),
        "recent transactions": LedgerEntry.objects.filter(account=account)
        .select_related("transfer__recipient")
        .order_by("-created", "-id")[:5],
        # The services' own queries: today's and the dashboard's days run from local midnight (TIME_ZONE).
        # Written by hand once, asked at every amount and every balance.
        "the daily limit": (selectors._sent_today_sql(), [1, now, now, "rejected"]),
        "card money held": (holds._held_sql(), [1, "paid", now, True]),
        "the last card deposit": (selectors.last_card_deposit_sql(), [1, "card", now]),
        "card money held and the last card deposit, as the balance asks them on their own": (
            union_of_shapes(holds.CARD_MONEY.queries("%s")),
            holds.CARD_MONEY.params(1, "", now),
        ),
        # A step's call read with what its answer asks (CallSession.find_with), as the steps ask them.
        **{
            f"the call, its account and {question.name}": (
                _find_with_sql((question,)),
                ["CA" + "0" * 32, *question.params("CA" + "0" * 32, "246810", now)],
            )
            for question in (holds.CARD_MONEY, holds.AMOUNT_CHECK, selectors.RECIPIENT)
        },
        "a caller's home number, as a call asks it": (selectors._caller_home_sql(), [now, "+12026230001"]),
        "a transfer's key": Transfer.objects.filter(idempotency_key="CA1:1:5"),
        "a recipient code": Recipient.objects.filter(code="246810", active=True),
        "a free confirmation code": ConfirmationCode.objects.filter(code_hash="0" * 64, expires__gt=now),
        "failed sign-ins in the last minute": SignInFailure.objects.filter(created__gt=now - timedelta(minutes=1)),
        "stale calls": CallSession.objects.filter(updated__lt=now - timedelta(hours=2)),
        "the dashboard's hours": HourlyActivity.objects.filter(hour__gte=now - timedelta(hours=48)),
        "the dashboard's days": dashboard.transfers_by_day(timezone.localdate(now)),
    }


def _sql(query) -> tuple[str, list]:
    if isinstance(query, tuple):
        return query[0], list(query[1])
    sql, params = query.query.get_compiler(using=connection.alias).as_sql()
    return sql, list(params)


def _plan(sql: str, params: list, *, generic: bool) -> str:
    """PostgreSQL's plan for the query: with these values, or the generic plan a prepared statement settles on.

    With DB_PREPARED_STATEMENTS on, psycopg prepares a query after its fifth
    run, and PostgreSQL may then run it with one generic plan for any values
    (plan_cache_mode auto): that plan must use an index too.
    """
    with connection.cursor() as cursor:
        if not generic:
            cursor.execute(f"EXPLAIN {sql}", params)
            return "\n".join(row[0] for row in cursor.fetchall())
        numbers = itertools.count(1)
        numbered = re.sub(r"%s", lambda _: f"${next(numbers)}", sql)
        values = ", ".join(psycopg.sql.Literal(value).as_string(connection.connection) for value in params)
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE hot_query AS {numbered}")
        try:
            cursor.execute(f"EXPLAIN EXECUTE hot_query({values})" if params else "EXPLAIN EXECUTE hot_query")
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE hot_query")
            cursor.execute("RESET plan_cache_mode")


@pytest.mark.parametrize("generic", [False, True], ids=["with values", "generic"])
@pytest.mark.parametrize("name", list(hot_queries()))
def test_every_hot_query_uses_an_index(name, generic):
    sql, params = _sql(hot_queries()[name])
    assert "%%" not in sql
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
    try:
        plan = _plan(sql, params, generic=generic)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = on")
    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan
