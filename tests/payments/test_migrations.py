"""payments 0006: a dispute reinstated before it keeps what Stripe reinstated (what it gave back and held back)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.accounts.test_migrations import executor_leaf_nodes, migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("payments", "0005_daily_limit_and_dispute_held_back")]
AFTER = [("payments", "0006_dispute_reinstated_cents")]


def test_a_reinstated_dispute_keeps_what_it_gave_back_and_held_back():
    old = migrate(BEFORE)
    account = old.get_model("accounts", "Account").objects.create(
        member_id="123456", pin_hash="x", status="active", verified_at=timezone.now(), balance_cents=13_000
    )
    Entry = old.get_model("accounts", "LedgerEntry")
    credit = Entry.objects.create(account=account, amount_cents=40_00, kind="card")
    Entry.objects.create(account=account, amount_cents=-40_00, kind="dispute", corrects=credit)
    Entry.objects.create(account=account, amount_cents=20_00, kind="reinstated", corrects=credit)
    deposit = old.get_model("payments", "CardDeposit").objects.create(
        account=account,
        amount_cents=40_00,
        status="paid",
        payment_intent="pi_1",
        entry=credit,
        line="l",
        release_at=timezone.now(),
    )
    Dispute = old.get_model("payments", "Dispute")
    Dispute.objects.create(
        stripe_id="dp_1",
        deposit=deposit,
        amount_cents=40_00,
        status="won",
        funds_withdrawn=True,
        funds_reinstated=True,
        held_back_cents=10_00,
    )
    Dispute.objects.create(stripe_id="dp_2", deposit=deposit, amount_cents=5_00, status="lost", funds_withdrawn=True)
    try:
        new = migrate(AFTER)
        reinstated = dict(new.get_model("payments", "Dispute").objects.values_list("stripe_id", "reinstated_cents"))
        assert reinstated == {"dp_1": 30_00, "dp_2": 0}
    finally:
        migrate(executor_leaf_nodes())


def test_a_full_reinstatement_after_a_refund_took_first_reads_as_all_and_the_refund_failing_gives_all_back():
    """What the old code left: a dashboard refund of 10 (pending) took 10 of a 25 deposit, the dispute withdrew 25
    and took the 15 left, Stripe reinstated all 25 and the old code gave back what the dispute took (15)."""
    old = migrate(BEFORE)
    account = old.get_model("accounts", "Account").objects.create(
        member_id="123456", pin_hash="x", status="active", verified_at=timezone.now(), balance_cents=115_00
    )
    Entry = old.get_model("accounts", "LedgerEntry")
    Entry.objects.create(account=account, amount_cents=100_00, kind="deposit")
    credit = Entry.objects.create(account=account, amount_cents=25_00, kind="card")
    refund_taken = Entry.objects.create(account=account, amount_cents=-10_00, kind="refund", corrects=credit)
    dispute_taken = Entry.objects.create(account=account, amount_cents=-15_00, kind="dispute", corrects=credit)
    given = Entry.objects.create(account=account, amount_cents=15_00, kind="reinstated", corrects=credit)
    deposit = old.get_model("payments", "CardDeposit").objects.create(
        account=account,
        amount_cents=25_00,
        status="paid",
        payment_intent="pi_1",
        entry=credit,
        line="l",
        release_at=timezone.now(),
    )
    old.get_model("payments", "Refund").objects.create(
        deposit=deposit, stripe_id="re_1", amount_cents=10_00, status="pending", clawback=True, taken_by=refund_taken
    )
    old.get_model("payments", "Dispute").objects.create(
        stripe_id="dp_1",
        deposit=deposit,
        amount_cents=25_00,
        status="won",
        funds_withdrawn=True,
        funds_reinstated=True,
        taken_by=dispute_taken,
        given_back_by=given,
    )
    try:
        migrate(AFTER)
        migrate(executor_leaf_nodes())
        from accounts.models import Account
        from payments import refunds
        from payments.models import Dispute, Refund

        assert Dispute.objects.get().kept_cents == 0  # Stripe reinstated everything
        # After the release the dashboard refund fails: no refund reached the card, the dispute was won.
        refunds.refund_ended(refund_id=Refund.objects.get().pk, status="failed", reason="lost_or_stolen_card")
        assert Account.objects.get(pk=account.pk).balance_cents == 125_00
    finally:
        migrate(executor_leaf_nodes())


def test_events_of_types_the_service_ignores_keep_no_id_of_their_object():
    """payments 0007: a payment_method.attached event kept its pm_ id; the events applied keep theirs."""
    old = migrate([("payments", "0006_dispute_reinstated_cents")])
    StripeEvent = old.get_model("payments", "StripeEvent")
    StripeEvent.objects.create(event_id="evt_1", type="payment_method.attached", object_id="pm_1QSecret")
    StripeEvent.objects.create(event_id="evt_2", type="charge.refunded", object_id="ch_1")
    try:
        new = migrate([("payments", "0007_stripe_events_keep_no_card_ids")])
        kept = dict(new.get_model("payments", "StripeEvent").objects.values_list("event_id", "object_id"))
        assert kept == {"evt_1": "", "evt_2": "ch_1"}
    finally:
        migrate(executor_leaf_nodes())


def test_the_migration_names_the_types_the_service_applies():
    from importlib import import_module

    from payments import events

    frozen = import_module("payments.migrations.0007_stripe_events_keep_no_card_ids")
    assert sorted(frozen.APPLIED) == sorted(events.HANDLERS)
