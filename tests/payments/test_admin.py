"""Card money in the admin, as the staff who use it: an operator of the Operators group, never a superuser."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import LedgerEntry, Recipient
from payments.models import CardDeposit, Dispute, Refund, StripeEvent
from tests.conftest import postgres_only
from tests.payments.test_card_deposits import pay, start

pytestmark = pytest.mark.django_db


def staff_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    client.defaults["wsgi.url_scheme"] = "https"
    client.defaults["SERVER_PORT"] = "443"
    return client


@pytest.fixture
def operator(db) -> Client:
    user = User.objects.create_user("olivia", password="not-used-here-9", is_staff=True)
    user.groups.add(Group.objects.get(name="Operators"))
    return staff_client(user)


def act(client: Client, action: str, *pks: int, confirmed: bool = True):
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], "index": "0"}
    if confirmed:
        data["post"] = "yes"
    return client.post(reverse("admin:payments_carddeposit_changelist"), data, secure=True, follow=True)


def test_an_operator_refund_without_a_stripe_key_is_refused_and_changes_nothing(
    operator, account, stripe_double, settings
):
    deposit = pay(start(account))
    settings.STRIPE_SECRET_KEY = ""
    settings.DEBUG = False
    page = act(operator, "refund", deposit.pk, confirmed=False)
    assert b"refused: STRIPE_SECRET_KEY is not set, refunds are off" in page.content
    answer = act(operator, "refund", deposit.pk)
    assert answer.status_code == 200 and b"refunds are off" in answer.content
    account.refresh_from_db()
    assert account.balance_cents == 125_00
    assert not Refund.objects.exists() and not LedgerEntry.objects.filter(kind="refund").exists()
    assert not LogEntry.objects.exists()
    assert not stripe_double.refunds


def test_an_operator_refund_takes_the_money_back_and_says_so_in_the_history(operator, account, stripe_double):
    deposit = pay(start(account))
    answer = act(operator, "refund", deposit.pk)
    assert b"Refunded 1 card deposit(s)." in answer.content
    refund = Refund.objects.get()
    assert refund.status == "succeeded" and refund.operator.username == "olivia" and not refund.clawback
    first, then = LogEntry.objects.order_by("pk")
    # The first entry committed with the money taken off, before Stripe was asked; the second, Stripe's answer.
    assert first.change_message.startswith("Took $25.00 off the account for refund ")
    assert "Refunded to the card" in then.change_message
    account.refresh_from_db()
    assert account.balance_cents == 100_00


def test_the_deposits_page_shows_its_number_and_its_ledger_entry(operator, account, stripe_double):
    deposit = pay(start(account))
    page = operator.get(reverse("admin:payments_carddeposit_change", args=[deposit.pk]), secure=True)
    assert page.status_code == 200
    # Both numbers refund_card_deposit takes: the deposit's (the page's) and its ledger entry's.
    assert f"Card deposit {deposit.pk}:".encode() in page.content
    assert reverse("admin:accounts_ledgerentry_change", args=[deposit.entry_id]).encode() in page.content


def test_release_hold_needs_a_confirmation_and_leaves_a_history_entry(operator, account, stripe_double):
    deposit = pay(start(account))
    CardDeposit.objects.filter(pk=deposit.pk).update(held_for_review=True, needs_look="early fraud warning")
    page = act(operator, "release_hold", deposit.pk, confirmed=False)
    assert b"held after an early fraud warning" in page.content
    deposit.refresh_from_db()
    assert deposit.held_for_review
    act(operator, "release_hold", deposit.pk)
    deposit.refresh_from_db()
    assert not deposit.held_for_review and deposit.release_at <= timezone.now()
    assert LogEntry.objects.get().change_message.startswith("Hold released")
    account.refresh_from_db()
    from accounts import ledger

    ledger.transfer_check(account=account, amount_cents=125_00)


def test_an_auditor_can_look_but_neither_refund_nor_release(account, stripe_double):
    user = User.objects.create_user("avery", password="not-used-here-9", is_staff=True)
    user.groups.add(Group.objects.get(name="Auditors"))
    auditor = staff_client(user)
    deposit = pay(start(account))
    for name in ("carddeposit", "refund", "dispute", "stripeevent"):
        assert auditor.get(reverse(f"admin:payments_{name}_changelist"), secure=True).status_code == 200
    assert act(auditor, "release_hold", deposit.pk).status_code == 403
    assert act(auditor, "refund", deposit.pk).status_code == 403


def test_refunds_disputes_and_events_are_listed_and_read_only(operator, account, stripe_double):
    deposit = pay(start(account))
    Dispute.objects.create(stripe_id="dp_1", deposit=deposit, amount_cents=25_00, status="needs_response")
    StripeEvent.objects.create(event_id="evt_1", type="charge.dispute.created", outcome="failed", detail="x")
    for name in ("refund", "dispute", "stripeevent"):
        assert operator.get(reverse(f"admin:payments_{name}_changelist"), secure=True).status_code == 200
        assert operator.get(reverse(f"admin:payments_{name}_add"), secure=True).status_code == 403
    dashboard = operator.get("/admin/", secure=True).content.decode()
    assert "Dispute on card deposit" in dashboard and "Stripe event evt_1" in dashboard


# Payees ---------------------------------------------------------------------------------------------------


def test_an_operator_cannot_rename_a_payee_and_a_superuser_renaming_one_leaves_both_names(operator, admin_client):
    recipient = Recipient.objects.create(code="246810", name="Jane Doe")
    url = reverse("admin:accounts_recipient_change", args=[recipient.pk])
    operator.post(url, {"name": "John Roe", "active": "on"}, secure=True)
    recipient.refresh_from_db()
    assert recipient.name == "Jane Doe"
    admin_client.post(url, {"name": "Jane Q. Doe", "active": "on"}, secure=True)
    recipient.refresh_from_db()
    assert recipient.name == "Jane Q. Doe"
    assert LogEntry.objects.latest("action_time").change_message == "Renamed from 'Jane Doe' to 'Jane Q. Doe'."


# Money actions commit before they call out ---------------------------------------------------------------


@postgres_only("row locks held (or not) while another connection waits: SQLite locks the whole file")
@pytest.mark.django_db(transaction=True)
def test_a_slow_stripe_refund_never_delays_a_deposit_for_the_same_member(account, stripe_double):
    """The admin's refund waits on Stripe; meanwhile a family pays for the same member, to the end."""
    from django.contrib.auth.models import Permission

    first = pay(start(account))
    user = User.objects.create_user("olivia", password="not-used-here-9", is_staff=True)
    # What the Operators group grants for this (a flushed transactional database has permissions, not groups).
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="payments", codename__in=["view_carddeposit", "refund_carddeposit"]
        )
    )
    operator = staff_client(user)
    stripe_double.refund_gate = threading.Event()

    def refund_in_the_admin() -> None:
        try:
            act(operator, "refund", first.pk)
        finally:
            connections.close_all()  # this thread's own connection: the test database is dropped after

    refunding = threading.Thread(target=refund_in_the_admin)
    refunding.start()
    try:
        assert stripe_double.refund_waiting.wait(timeout=20), "the refund never reached Stripe"
        # Stripe is still thinking about the refund: the member's rows must be free.
        second = pay(start(account, 30_00, call_sid="CA" + "f" * 32, line="another-line"))
        assert second.status == "paid"
        assert refunding.is_alive(), "the deposit finished while the refund still waited on Stripe"
    finally:
        stripe_double.refund_gate.set()
        refunding.join(timeout=30)
        connections.close_all()
    account.refresh_from_db()
    assert account.balance_cents == 100_00 + 30_00
    assert Refund.objects.get().status == "succeeded"


def test_a_dispute_blocks_the_admin_refund(operator, account, stripe_double):
    deposit = pay(start(account))
    Dispute.objects.create(
        stripe_id="dp_2", deposit=deposit, amount_cents=25_00, status="needs_response", updated=timezone.now()
    )
    page = act(operator, "refund", deposit.pk, confirmed=False)
    assert b"a dispute is open" in page.content
    act(operator, "refund", deposit.pk)
    assert not Refund.objects.exists()
    assert timedelta(0) <= timezone.now() - deposit.created


@pytest.mark.parametrize(
    ("stripe_does", "said"),
    [
        ("refuses", b"Stripe refused the refund (InvalidRequestError 400 resource_missing): nothing reached the card"),
        ("loses its answer", b"Stripe&#x27;s answer was lost"),
        ("says it was refunded already", b"Stripe says the card was already refunded"),
    ],
)
def test_a_refund_that_did_not_reach_the_card_is_a_warning_never_refunded(
    operator, account, stripe_double, stripe_does, said
):
    """An operator who reads "Refunded 1 card deposit(s)." tells the family the card was refunded."""
    deposit = pay(start(account))
    if stripe_does == "refuses":
        stripe_double.refund_refusal = "resource_missing"
    elif stripe_does == "loses its answer":
        stripe_double.refunds_lost = 1
    else:
        stripe_double.refund_in_dashboard(deposit.payment_intent, 25_00)
    answer = act(operator, "refund", deposit.pk)
    assert b"Refunded 1 card deposit(s)." not in answer.content and b"Refunded 0 card deposit(s)." in answer.content
    assert said in answer.content
    assert b'<li class="warning">' in answer.content
    assert LogEntry.objects.filter(object_id=str(deposit.pk)).count() == 2  # taken off, then what Stripe said


def _dashboard_list(operator, list_id: str) -> str:
    page = operator.get("/admin/", secure=True).content.decode()
    return page.split(f'id="{list_id}"')[1].split("</ul>")[0]


def test_the_dashboards_recent_days_count_what_was_not_charged_and_the_refunds(operator, account, stripe_double):
    assert "No card deposits this week." in _dashboard_list(operator, "card-deposit-days")
    pay(start(account), "", result="caller-hung-up")
    refunded = pay(start(account, call_sid="CA" + "8" * 32))
    from payments import refunds

    refunds.card_deposit_refund(deposit_id=refunded.pk)
    days = _dashboard_list(operator, "card-deposit-days")
    assert "$25.00 paid in 1; 1 not charged; 1 refund asked" in days, days
    assert days.count("<li>") == 1  # today only: a day with nothing is not listed


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("refused", "nothing reached the card: the money was given back to the member"),
        ("refunded in Stripe", "the card was refunded in Stripe instead: the money stays taken back"),
    ],
)
def test_the_dashboard_says_what_became_of_a_refund_that_did_not_reach_the_card(
    operator, account, stripe_double, how, said
):
    from payments import refunds

    deposit = pay(start(account))
    if how == "refused":
        stripe_double.refund_refusal = "resource_missing"
    else:
        stripe_double.refund_in_dashboard(deposit.payment_intent, 25_00)
    refunds.card_deposit_refund(deposit_id=deposit.pk)
    line = next(
        li
        for li in _dashboard_list(operator, "card-money-needing-a-look").split("<li>")
        if f"Refund of card deposit {deposit.pk}</a>" in li and ("failed" in li or "canceled" in li)
    )
    assert said in line, line
    account.refresh_from_db()
    assert account.balance_cents == (125_00 if how == "refused" else 100_00)
