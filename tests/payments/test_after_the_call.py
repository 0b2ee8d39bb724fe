"""Card money after the call: Stripe's events, refunds that finish, disputes, and the hold.

Events are signed bodies shaped like Stripe's Event objects around its Refund, Dispute, Charge and
EarlyFraudWarning objects (tests/stripe_double.py); each sequence is applied twice and in reverse
order, and the ledger and the words the member hears are checked after each.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.utils import timezone
from django.utils.translation import override

from accounts import ledger
from accounts.errors import MoneyHeld, MoneyOwed
from accounts.models import Account, LedgerEntry
from ivr.steps.common import balance_words
from payments import refunds
from payments.models import CardDeposit, Dispute, Refund, StripeEvent
from tests.payments.test_card_deposits import pay, signed, start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_double")]


def balance(account: Account) -> int:
    account.refresh_from_db()
    return account.balance_cents


def heard(account: Account) -> str:
    account.refresh_from_db()
    with override("en"):
        return " ".join(str(line) for line in balance_words(account))


def paid_deposit(account: Account, cents: int = 25_00) -> CardDeposit:
    deposit = pay(start(account, cents))
    assert deposit.status == "paid"
    return deposit


def spend(account: Account, cents: int) -> None:
    """The member spends money that is free: an operator's deposit, sent by transfer."""
    from accounts.models import Recipient

    recipient, _ = Recipient.objects.get_or_create(code="246810", defaults={"name": "Jane Doe"})
    account.refresh_from_db()
    ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=cents, idempotency_key=f"spend-{time.time_ns()}"
    )


def send(client, event: dict):
    answer = signed(client, event)
    assert answer.status_code == 200, answer.content
    return answer


# Refunds made in Stripe's dashboard ---------------------------------------------------------------


def test_a_dashboard_refund_is_taken_back_once_by_charge_refunded_and_refund_created(client, account, stripe_double):
    deposit = paid_deposit(account)
    refund = stripe_double.refund_in_dashboard(deposit.payment_intent, 10_00)
    charge = {
        "id": stripe_double.charge_of(deposit.payment_intent),
        "object": "charge",
        "payment_intent": deposit.payment_intent,
        "amount": 25_00,
        "amount_refunded": 10_00,
        "refunded": False,
    }
    sequence = [stripe_double.event("charge.refunded", charge), stripe_double.event("refund.created", refund)]
    for event in sequence * 2:
        send(client, event)
        assert balance(account) == 115_00
    taken = Refund.objects.get()
    assert taken.stripe_id == refund["id"] and taken.operator is None and taken.taken_by.amount_cents == -10_00
    assert "Your balance is 115 dollars." in heard(account)


def test_a_dashboard_refund_that_fails_later_gives_the_money_back_in_either_order(client, account, stripe_double):
    deposit = paid_deposit(account)
    refund = stripe_double.refund_in_dashboard(deposit.payment_intent, 25_00, status="pending")
    created = stripe_double.event("refund.created", refund)
    failed = stripe_double.event(
        "refund.failed", {**refund, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    )
    send(client, created)
    assert balance(account) == 100_00
    send(client, failed)
    send(client, created)  # late, and again
    assert balance(account) == 125_00
    kinds = list(LedgerEntry.objects.filter(corrects=deposit.entry).values_list("kind", flat=True).order_by("pk"))
    assert kinds == ["refund", "returned"]


def test_a_refund_failing_first_then_created_takes_nothing(client, account, stripe_double):
    deposit = paid_deposit(account)
    refund = stripe_double.refund_in_dashboard(deposit.payment_intent, 25_00, status="pending")
    created = stripe_double.event("refund.created", refund)
    failed = stripe_double.event("refund.failed", {**refund, "status": "failed"})
    for event in (failed, created, failed):
        send(client, event)
        assert balance(account) == 125_00
    assert not LedgerEntry.objects.filter(corrects=deposit.entry).exists()


def test_our_refund_pending_then_succeeded_by_charge_refund_updated_then_failed_days_later(
    client, account, stripe_double
):
    deposit = paid_deposit(account)
    stripe_double.refund_status = "pending"
    ours = refunds.card_deposit_refund(deposit_id=deposit.pk)
    assert ours.status == "pending" and balance(account) == 100_00
    found = stripe_double.refunds[ours.stripe_id]
    send(client, stripe_double.event("charge.refund.updated", {**found, "status": "succeeded"}))
    assert Refund.objects.get().status == "succeeded" and balance(account) == 100_00
    send(client, stripe_double.event("refund.updated", {**found, "status": "pending"}))  # an older word
    assert Refund.objects.get().status == "succeeded"
    send(client, stripe_double.event("refund.failed", {**found, "status": "failed"}))
    assert Refund.objects.get().status == "failed" and balance(account) == 125_00


def test_a_lost_refund_answer_is_matched_by_our_uuid_in_the_event(client, account, stripe_double):
    deposit = paid_deposit(account)
    stripe_double.refunds_lost = 1
    ours = refunds.card_deposit_refund(deposit_id=deposit.pk)
    assert ours.status == "requested" and ours.stripe_id is None and balance(account) == 100_00
    [made] = stripe_double.refunds.values()
    send(client, stripe_double.event("refund.created", made))
    ours.refresh_from_db()
    assert ours.stripe_id == made["id"] and ours.status == "succeeded" and balance(account) == 100_00
    assert Refund.objects.count() == 1


# Disputes ----------------------------------------------------------------------------------------------


def dispute_sequence(stripe_double, deposit: CardDeposit, amount: int) -> list[dict]:
    pi = deposit.payment_intent
    return [
        stripe_double.event("charge.dispute.created", stripe_double.dispute(pi, amount)),
        stripe_double.event("charge.dispute.funds_withdrawn", stripe_double.dispute(pi, amount, moves=[-amount])),
        stripe_double.event("charge.dispute.updated", stripe_double.dispute(pi, amount, "under_review", [-amount])),
        stripe_double.event(
            "charge.dispute.funds_reinstated", stripe_double.dispute(pi, amount, "won", [-amount, amount])
        ),
        stripe_double.event("charge.dispute.closed", stripe_double.dispute(pi, amount, "won", [-amount, amount])),
    ]


def test_a_dispute_of_money_already_spent_leaves_the_member_owing_then_reinstated_gives_it_back_once(
    client, account, stripe_double
):
    deposit = paid_deposit(account, 200_00)
    spend(account, 100_00)  # the operator's 100 dollars, which were free
    assert balance(account) == 200_00
    created, withdrawn, updated, reinstated, closed = dispute_sequence(stripe_double, deposit, 200_00)
    send(client, created)
    assert balance(account) == 200_00  # a dispute opened takes nothing yet
    # The hold ends, and the member sends most of the card money on.
    CardDeposit.objects.filter(pk=deposit.pk).update(release_at=timezone.now())
    spend(account, 150_00)
    assert balance(account) == 50_00
    for event in (withdrawn, withdrawn, updated):
        send(client, event)
        assert balance(account) == -150_00
    account.refresh_from_db()
    assert account.lowest_balance_cents == -150_00
    assert heard(account) == (
        "You owe 150 dollars because a card deposit was taken back. Your next deposits will pay it first."
    )
    with pytest.raises(MoneyOwed):
        ledger.transfer_check(account=account, amount_cents=1_00)
    dispute = Dispute.objects.get()
    assert dispute.funds_withdrawn and dispute.taken_by.kind == "dispute" and dispute.amount_cents == 200_00
    for event in (reinstated, closed, reinstated, withdrawn):
        send(client, event)
        assert balance(account) == 50_00
    dispute.refresh_from_db()
    assert dispute.status == "won" and dispute.given_back_by.kind == "reinstated"
    assert heard(account).startswith("Your balance is 50 dollars.")


def test_a_dispute_applied_in_reverse_order_ends_where_it_would_have(client, account, stripe_double):
    deposit = paid_deposit(account, 50_00)
    for event in reversed(dispute_sequence(stripe_double, deposit, 50_00)):
        send(client, event)
        assert balance(account) == 150_00  # reinstated came first: the late withdrawal takes nothing
    assert Dispute.objects.get().status == "won"


def test_a_lost_dispute_keeps_the_money_taken_and_the_fee_is_never_the_members(client, account, stripe_double):
    deposit = paid_deposit(account, 40_00)
    pi = deposit.payment_intent
    send(
        client, stripe_double.event("charge.dispute.funds_withdrawn", stripe_double.dispute(pi, 40_00, moves=[-40_00]))
    )
    send(client, stripe_double.event("charge.dispute.closed", stripe_double.dispute(pi, 40_00, "lost", [-40_00])))
    assert balance(account) == 100_00  # 40 dollars back, not 40 plus Stripe's 15 dollar fee
    assert not Dispute.objects.get().is_open


def test_an_appealed_lost_dispute_is_open_again_and_a_won_appeal_gives_the_money_back(client, account, stripe_double):
    deposit = paid_deposit(account, 40_00)
    pi = deposit.payment_intent
    lost = stripe_double.event("charge.dispute.closed", stripe_double.dispute(pi, 40_00, "lost", [-40_00]))
    send(client, lost)
    assert balance(account) == 100_00 and not Dispute.objects.get().is_open
    appealed = stripe_double.event(
        "charge.dispute.updated", stripe_double.dispute(pi, 40_00, "appeal_under_review", [-40_00])
    )
    send(client, appealed)
    dispute = Dispute.objects.get()
    assert dispute.status == "appeal_under_review" and dispute.is_open and balance(account) == 100_00
    with pytest.raises(refunds.DisputeOpen):
        refunds.card_deposit_refund(deposit_id=deposit.pk)
    won = stripe_double.dispute(pi, 40_00, "won", [-40_00, 40_00])
    send(client, stripe_double.event("charge.dispute.funds_reinstated", won))
    assert balance(account) == 140_00
    # Late words, in new events, of a dispute that is over: nothing moves.
    for status in ("lost", "appeal_needs_response", "needs_response"):
        send(client, stripe_double.event("charge.dispute.updated", stripe_double.dispute(pi, 40_00, status, [-40_00])))
        assert balance(account) == 140_00 and Dispute.objects.get().status == "won"


def test_a_partial_reinstatement_gives_back_what_stripe_gave_back_and_flags_the_deposit(client, account, stripe_double):
    deposit = paid_deposit(account, 40_00)
    pi = deposit.payment_intent
    send(
        client, stripe_double.event("charge.dispute.funds_withdrawn", stripe_double.dispute(pi, 40_00, moves=[-40_00]))
    )
    assert balance(account) == 100_00
    partly = stripe_double.dispute(pi, 40_00, "won", [-40_00, 30_00])
    for _ in range(2):
        send(client, stripe_double.event("charge.dispute.funds_reinstated", partly))
        assert balance(account) == 130_00
    deposit.refresh_from_db()
    assert "Stripe gave back 3000 of the 4000 cents" in deposit.needs_look


def test_a_won_dispute_gives_back_nothing_a_dashboard_refund_already_sent_to_the_card(client, account, stripe_double):
    deposit = paid_deposit(account, 25_00)
    pi = deposit.payment_intent
    send(
        client, stripe_double.event("charge.dispute.funds_withdrawn", stripe_double.dispute(pi, 25_00, moves=[-25_00]))
    )
    assert balance(account) == 100_00
    # The dispute is won; an operator also refunds the card in Stripe's dashboard, and that event comes first.
    refund = stripe_double.refund_in_dashboard(pi, 25_00)
    send(client, stripe_double.event("refund.created", refund))
    assert balance(account) == 100_00  # nothing was left to take: the dispute had it
    won = stripe_double.dispute(pi, 25_00, "won", [-25_00, 25_00])
    for _ in range(2):
        send(client, stripe_double.event("charge.dispute.funds_reinstated", won))
        assert balance(account) == 100_00  # the card has the 25 dollars: the member does not get them too
    deposit.refresh_from_db()
    assert "given back while the charge was refunded: nothing more to the member" in deposit.needs_look
    # Days later that refund fails: the card never got the money, Stripe has it back, so the member does.
    failed = stripe_double.event(
        "refund.failed", {**refund, "status": "failed", "failure_reason": "lost_or_stolen_card"}
    )
    for _ in range(2):
        send(client, failed)
        assert balance(account) == 125_00


@pytest.mark.parametrize("first_seen", ["reinstated event before withdrawn", "by reconciliation, settled"])
def test_a_partial_reinstatement_first_seen_with_its_withdrawal_still_takes_the_difference(
    client, account, stripe_double, first_seen
):
    """In order, withdrawn then reinstated leave 130 dollars (above): seen together, the same."""
    from io import StringIO

    from django.core.management import call_command

    deposit = paid_deposit(account, 40_00)
    pi = deposit.payment_intent
    partly = stripe_double.dispute(pi, 40_00, "won", [-40_00, 30_00])  # Stripe took 40 and gave back 30
    if first_seen == "by reconciliation, settled":
        call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
    else:
        send(client, stripe_double.event("charge.dispute.funds_reinstated", partly))
        assert balance(account) == 130_00
        withdrawn = stripe_double.dispute(pi, 40_00, moves=[-40_00])
        send(client, stripe_double.event("charge.dispute.funds_withdrawn", withdrawn))
    assert Dispute.objects.get().status == "won"
    assert balance(account) == 130_00  # Stripe kept 10 dollars of the card's money: so does the ledger
    deposit.refresh_from_db()
    assert "Stripe gave back 3000 of the 4000 cents" in deposit.needs_look


def test_a_refund_that_fails_after_a_dispute_withdrew_its_money_leaves_it_with_the_dispute(
    client, account, stripe_double
):
    """Our refund took the money first, so the dispute could take nothing; the refund then fails. Stripe
    no longer has the money (the dispute withdrew it): the member does not get it back, and a won
    dispute gives it back once."""
    deposit = paid_deposit(account, 40_00)
    stripe_double.refund_status = "pending"
    ours = refunds.card_deposit_refund(deposit_id=deposit.pk)
    assert balance(account) == 100_00
    pi = deposit.payment_intent
    send(
        client, stripe_double.event("charge.dispute.funds_withdrawn", stripe_double.dispute(pi, 40_00, moves=[-40_00]))
    )
    assert balance(account) == 100_00
    failed = stripe_double.event("refund.failed", {**stripe_double.refunds[ours.stripe_id], "status": "failed"})
    for _ in range(2):
        send(client, failed)
        assert balance(account) == 100_00
    assert Dispute.objects.get().taken_by is not None
    assert [entry.kind for entry in LedgerEntry.objects.filter(corrects=deposit.entry).order_by("pk")] == [
        "refund",
        "returned",
        "dispute",
    ]
    won = stripe_double.dispute(pi, 40_00, "won", [-40_00, 40_00])
    for _ in range(2):
        send(client, stripe_double.event("charge.dispute.funds_reinstated", won))
        assert balance(account) == 140_00


def test_an_inquiry_only_flags_the_deposit(client, account, stripe_double):
    deposit = paid_deposit(account)
    inquiry = stripe_double.dispute(deposit.payment_intent, 25_00, "warning_needs_response")
    send(client, stripe_double.event("charge.dispute.created", inquiry))
    deposit.refresh_from_db()
    assert balance(account) == 125_00 and "inquiry" in deposit.needs_look
    with pytest.raises(refunds.DisputeOpen):
        refunds.card_deposit_refund(deposit_id=deposit.pk)


def test_appeal_words_out_of_order_end_where_stripe_is_and_reconciliation_believes_stripe(
    client, account, stripe_double
):
    from payments import disputes, stripe_api

    deposit = paid_deposit(account, 40_00)
    pi = deposit.payment_intent
    for status in ("lost", "appeal_under_review", "lost", "won"):  # the second "lost" is stale, resent
        send(client, stripe_double.event("charge.dispute.updated", stripe_double.dispute(pi, 40_00, status, [-40_00])))
    send(
        client, stripe_double.event("charge.dispute.updated", stripe_double.dispute(pi, 40_00, "appeal_needs_response"))
    )
    assert Dispute.objects.get().status == "won"  # a stale appeal word after it was won
    # An appeal lost, then a stale appeal word: events alone cannot tell it from a new appeal, and reopen it.
    Dispute.objects.update(status="lost")
    send(client, stripe_double.event("charge.dispute.updated", stripe_double.dispute(pi, 40_00, "appeal_under_review")))
    assert Dispute.objects.get().is_open
    # Reconciliation reads the dispute as Stripe has it now, and believes it.
    disputes.dispute_seen(
        stripe_api.dispute_from(stripe_double.dispute(pi, 40_00, "lost", [-40_00])), read_at=timezone.now()
    )
    assert Dispute.objects.get().status == "lost" and balance(account) == 100_00
    # Unless an event changed ours after Stripe's list was read: the event is the newer word.
    listed_at = timezone.now()
    send(client, stripe_double.event("charge.dispute.closed", stripe_double.dispute(pi, 40_00, "won", [-40_00, 40_00])))
    disputes.dispute_seen(
        stripe_api.dispute_from(stripe_double.dispute(pi, 40_00, "lost", [-40_00])), read_at=listed_at
    )
    assert Dispute.objects.get().status == "won" and balance(account) == 140_00


def test_a_closed_inquiry_the_bank_escalates_is_a_dispute_again(client, account, stripe_double):
    deposit = paid_deposit(account)
    pi = deposit.payment_intent
    for status in ("warning_needs_response", "warning_closed"):
        send(client, stripe_double.event("charge.dispute.updated", stripe_double.dispute(pi, 25_00, status)))
    assert not Dispute.objects.get().is_open and balance(account) == 125_00
    send(
        client, stripe_double.event("charge.dispute.updated", stripe_double.dispute(pi, 25_00, "warning_under_review"))
    )
    assert Dispute.objects.get().status == "warning_closed"  # a late word of the inquiry
    send(
        client,
        stripe_double.event("charge.dispute.funds_withdrawn", stripe_double.dispute(pi, 25_00, moves=[-25_00])),
    )
    assert Dispute.objects.get().status == "needs_response" and balance(account) == 100_00


def test_an_early_fraud_warning_keeps_held_money_held_until_an_operator_releases_it(client, account, stripe_double):
    from payments import holds

    deposit = paid_deposit(account)
    CardDeposit.objects.filter(pk=deposit.pk).update(needs_look="credited past a limit (two payments at once)")
    warning = {
        "id": "issfr_1QEarlyFraudWarning0001",
        "object": "radar.early_fraud_warning",
        "actionable": True,
        "charge": stripe_double.charge_of(deposit.payment_intent),
        "created": int(time.time()),
        "fraud_type": "made_with_stolen_card",
        "livemode": False,
        "payment_intent": deposit.payment_intent,
    }
    event = stripe_double.event("radar.early_fraud_warning.created", warning)
    send(client, event)
    send(client, event)
    deposit.refresh_from_db()
    assert deposit.held_for_review and deposit.needs_look == (
        "early fraud warning issfr_1QEarlyFraudWarning0001 (made_with_stolen_card); "
        "credited past a limit (two payments at once)"
    )
    later = deposit.release_at + timedelta(days=1)
    with pytest.raises(MoneyHeld):
        ledger.transfer_check(account=account, amount_cents=101_00, now=later)
    assert "The rest is from a card deposit: you cannot send it yet." in heard(account)
    holds.release(deposit_id=deposit.pk, now=timezone.now())
    ledger.transfer_check(account=account, amount_cents=125_00)


# Events: signatures, failures, not ours ---------------------------------------------------------------


def test_a_forged_stale_or_other_mode_dispute_event_changes_nothing(client, account, stripe_double):
    deposit = paid_deposit(account)
    withdrawn = stripe_double.event(
        "charge.dispute.funds_withdrawn", stripe_double.dispute(deposit.payment_intent, 25_00, moves=[-25_00])
    )
    assert signed(client, withdrawn, secret="whsec_forged").status_code == 400
    assert signed(client, withdrawn, at=int(time.time()) - 600).status_code == 400
    assert not StripeEvent.objects.exists()
    assert signed(client, {**withdrawn, "livemode": True}).status_code == 200
    assert StripeEvent.objects.get().outcome == "not ours" and balance(account) == 125_00


def foreign_refund(created: int) -> dict:
    """A refund of another charge on the same Stripe account: not ours."""
    return {
        "id": "re_3QForeign",
        "object": "refund",
        "amount": 500,
        "charge": "ch_3QForeign",
        "payment_intent": "pi_3QForeign",
        "status": "succeeded",
        "metadata": {},
        "created": created,
    }


def test_a_refund_on_someone_elses_charge_is_stored_and_ignored(client, account, stripe_double):
    paid_deposit(account)
    foreign = foreign_refund(int(time.time()))
    send(client, stripe_double.event("refund.created", foreign))
    assert StripeEvent.objects.get().outcome == "not ours" and balance(account) == 125_00


def test_charge_refunded_while_stripe_cannot_be_read_answers_500_then_applies_once(client, account, stripe_double):
    deposit = paid_deposit(account)
    stripe_double.refund_in_dashboard(deposit.payment_intent, 25_00)
    charge = {
        "id": stripe_double.charge_of(deposit.payment_intent),
        "object": "charge",
        "payment_intent": deposit.payment_intent,
        "amount": 25_00,
        "amount_refunded": 25_00,
        "refunded": True,
    }
    event = stripe_double.event("charge.refunded", charge)
    stripe_double.down = True
    assert signed(client, event).status_code == 500
    assert StripeEvent.objects.get().outcome == "failed" and balance(account) == 125_00
    stripe_double.down = False
    send(client, event)
    send(client, event)
    assert StripeEvent.objects.get().outcome == "applied" and balance(account) == 100_00
    # Each read inside an event waits far less than Stripe waits for our answer (EVENT_READ_SECONDS).
    listed = [call.request for call in stripe_double.mocked.calls if "/v1/refunds?" in call.request.url]
    assert listed and {sum(request.req_kwargs["timeout"]) for request in listed} == {5}


def test_stripe_events_since_applies_what_never_arrived(account, stripe_double):
    from io import StringIO

    from django.core.management import call_command

    deposit = paid_deposit(account)
    refund = stripe_double.refund_in_dashboard(deposit.payment_intent, 5_00)
    stripe_double.event("refund.created", refund)
    stripe_double.event("customer.created", {"id": "cus_1", "object": "customer"})
    out = StringIO()
    call_command("stripe_events", "--since", timezone.localdate().isoformat(), stdout=out)
    assert "1 event(s) applied" in out.getvalue() and balance(account) == 120_00
    call_command("stripe_events", "--since", timezone.localdate().isoformat(), stdout=out)
    assert balance(account) == 120_00


def test_reconciliation_applies_dashboard_refunds_and_disputes_no_event_delivered(account, stripe_double):
    from io import StringIO

    from django.core.management import call_command

    deposit = paid_deposit(account, 30_00)
    stripe_double.refund_in_dashboard(deposit.payment_intent, 10_00)
    stripe_double.dispute(deposit.payment_intent, 20_00, "needs_response", moves=[-20_00])
    out = StringIO()
    call_command("reconcile_card_deposits", stdout=out)
    assert "would be" in out.getvalue() and balance(account) == 130_00
    call_command("reconcile_card_deposits", "--resolve", stdout=out)
    assert balance(account) == 100_00
    out = StringIO()
    call_command("reconcile_card_deposits", "--resolve", stdout=out)
    assert "Stripe and the card deposits agree." in out.getvalue() and balance(account) == 100_00


# The hold ---------------------------------------------------------------------------------------------------


def test_card_money_cannot_leave_before_its_release_and_says_from_when(account, stripe_double, monkeypatch):
    deposit = paid_deposit(account, 40_00)
    free_from = deposit.release_at
    assert "You can send 100 dollars now. The rest is from a card deposit: you can send it starting" in heard(account)
    with pytest.raises(MoneyHeld) as refused:
        ledger.transfer_check(account=account, amount_cents=110_00)
    assert refused.value.sendable_cents == 100_00
    ledger.transfer_check(account=account, amount_cents=100_00)
    moved = free_from + timedelta(minutes=1)
    monkeypatch.setattr(timezone, "now", lambda: moved)
    ledger.transfer_check(account=account, amount_cents=140_00)
    assert heard(account) == "Your balance is 140 dollars."


def test_held_money_is_checked_under_the_accounts_lock_when_the_transfer_is_made(account, stripe_double):
    from accounts.models import Recipient

    Recipient.objects.create(code="246810", name="Jane Doe")
    ledger.transfer_check(account=account, amount_cents=100_00)  # before the card money: all free
    paid_deposit(account, 200_00)
    # The card money arrived between the amount and the confirmation: the transfer is refused, not sent.
    with pytest.raises(MoneyHeld):
        ledger.transfer_submit(account=account, recipient_code="246810", amount_cents=150_00, idempotency_key="k")
    assert balance(account) == 300_00


def test_a_version_3_deposit_releases_at_its_decided_time_plus_the_hold(account, stripe_double, settings):
    from payments import holds

    deposit = paid_deposit(account)
    decided = timezone.now() - timedelta(hours=settings.CARD_FUNDS_HOLD_HOURS - 1)
    CardDeposit.objects.filter(pk=deposit.pk).update(
        charged_by="connector", decided=decided, release_at=decided + timedelta(hours=settings.CARD_FUNDS_HOLD_HOURS)
    )
    held = holds.card_money_held(account.pk, timezone.now())
    assert held.cents == 25_00
    assert holds.card_money_held(account.pk, timezone.now() + timedelta(hours=2)).cents == 0


def test_money_taken_back_is_no_longer_held(account, stripe_double):
    deposit = paid_deposit(account)
    refunds.card_deposit_refund(deposit_id=deposit.pk)
    assert heard(account) == "Your balance is 100 dollars."
    ledger.transfer_check(account=account, amount_cents=100_00)


def test_the_refusals_come_in_order_unverified_owed_held_per_transfer_daily(account, stripe_double, settings):
    from accounts.errors import AccountNotVerified, TransferLimitExceeded

    paid_deposit(account, 200_00)  # 300 dollars, 100 of them free
    account.refresh_from_db()
    settings.TRANSFER_LIMIT_DOLLARS = 500
    with pytest.raises(MoneyHeld):
        ledger.transfer_check(account=account, amount_cents=150_00)  # held before the per-transfer limit
    # Held only where it is what stops the amount: "you can send only 100 now" would be false at 50 a transfer.
    settings.TRANSFER_LIMIT_DOLLARS = 50
    with pytest.raises(TransferLimitExceeded):
        ledger.transfer_check(account=account, amount_cents=150_00)
    with pytest.raises(TransferLimitExceeded):
        ledger.transfer_check(account=account, amount_cents=60_00)
    Account.objects.filter(pk=account.pk).update(balance_cents=-5_00, lowest_balance_cents=-5_00)
    account.refresh_from_db()
    with pytest.raises(MoneyOwed):
        ledger.transfer_check(account=account, amount_cents=1_00)
    Account.objects.filter(pk=account.pk).update(status="pending", verified_at=None)
    account.refresh_from_db()
    with pytest.raises(AccountNotVerified):
        ledger.transfer_check(account=account, amount_cents=1_00)


def test_events_bodies_are_never_kept(client, account, stripe_double):
    deposit = paid_deposit(account)
    send(client, stripe_double.event("refund.created", stripe_double.refund_in_dashboard(deposit.payment_intent, 100)))
    row = StripeEvent.objects.get()
    assert set(json.loads(json.dumps({"d": row.detail}))) == {"d"} and "fingerprint" not in row.detail


def test_card_money_is_counted_for_prometheus(client, account, stripe_double, django_capture_on_commit_callbacks):
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    paid, withdrawn = (
        value("myibot_card_charges_total", outcome="paid"),
        value("myibot_card_disputes_total", event="funds_withdrawn"),
    )
    applied, succeeded = (
        value("myibot_stripe_events_total", outcome="applied"),
        value("myibot_card_refunds_total", status="succeeded"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        deposit = paid_deposit(account)
    assert value("myibot_card_charges_total", outcome="paid") == paid + 1
    assert value("myibot_card_deposits_uncertain") == 0
    with django_capture_on_commit_callbacks(execute=True):
        refunds.card_deposit_refund(deposit_id=deposit.pk)
    assert value("myibot_card_refunds_total", status="succeeded") == succeeded + 1
    other = paid_deposit(account, 10_00)
    event = stripe_double.event(
        "charge.dispute.funds_withdrawn", stripe_double.dispute(other.payment_intent, 10_00, moves=[-10_00])
    )
    with django_capture_on_commit_callbacks(execute=True):
        send(client, event)
    assert value("myibot_card_disputes_total", event="funds_withdrawn") == withdrawn + 1
    assert value("myibot_stripe_events_total", outcome="applied") == applied + 1


# Every handled type, applied twice and in reverse order, the ledger and the words checked after each ----------


def sequences(stripe_double, deposit: CardDeposit) -> dict[str, tuple[list[dict], int]]:
    """Each type's events for one paid 25-dollar deposit, in Stripe's order, and the balance they end at."""
    pi = deposit.payment_intent
    charge = stripe_double.charge_of(pi)
    refund = stripe_double.refund_in_dashboard(pi, 10_00, status="pending")
    failed_refund = {**refund, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    charge_obj = {"id": charge, "object": "charge", "payment_intent": pi, "amount": 25_00, "amount_refunded": 10_00}
    warning = {
        "id": "issfr_1Q",
        "object": "radar.early_fraud_warning",
        "charge": charge,
        "payment_intent": pi,
        "fraud_type": "misc",
        "actionable": True,
        "created": int(time.time()),
        "livemode": False,
    }
    succeeded = {
        "id": pi,
        "object": "payment_intent",
        "amount": 25_00,
        "status": "succeeded",
        "livemode": False,
        "metadata": {"public_id": str(deposit.public_id), "deposit": str(deposit.pk)},
        "latest_charge": charge,
        "created": int(time.time()),
    }
    return {
        "payment_intent": (
            [
                stripe_double.event("payment_intent.succeeded", succeeded),
                stripe_double.event(
                    "payment_intent.payment_failed", {**succeeded, "status": "requires_payment_method"}
                ),
                stripe_double.event("payment_intent.canceled", {**succeeded, "status": "canceled"}),
            ],
            125_00,
        ),
        "dashboard refund, then it fails": (
            [
                stripe_double.event("refund.created", refund),
                stripe_double.event("charge.refunded", charge_obj),
                stripe_double.event("refund.updated", {**refund, "status": "succeeded"}),
                stripe_double.event("charge.refund.updated", failed_refund),
                stripe_double.event("refund.failed", failed_refund),
            ],
            125_00,
        ),
        "dispute lost": (
            [
                stripe_double.event("charge.dispute.created", stripe_double.dispute(pi, 25_00)),
                stripe_double.event("charge.dispute.funds_withdrawn", stripe_double.dispute(pi, 25_00, moves=[-25_00])),
                stripe_double.event(
                    "charge.dispute.updated", stripe_double.dispute(pi, 25_00, "under_review", [-25_00])
                ),
                stripe_double.event("charge.dispute.closed", stripe_double.dispute(pi, 25_00, "lost", [-25_00])),
            ],
            100_00,
        ),
        "early fraud warning": ([stripe_double.event("radar.early_fraud_warning.created", warning)], 125_00),
    }


@pytest.mark.parametrize(
    "name", ["payment_intent", "dashboard refund, then it fails", "dispute lost", "early fraud warning"]
)
@pytest.mark.parametrize("order", ["forward, twice", "reverse"])
def test_each_type_applied_twice_or_in_reverse_ends_the_same_and_says_so(client, account, stripe_double, name, order):
    deposit = paid_deposit(account)
    events, ends_at = sequences(stripe_double, deposit)[name]
    applied = events + events if order == "forward, twice" else list(reversed(events))
    for event in applied:
        send(client, event)
        account.refresh_from_db()
        # After every event: the ledger and the balance agree, never below what the member could owe,
        # and the member hears words that match it.
        assert account.balance_cents == sum(
            LedgerEntry.objects.filter(account=account).values_list("amount_cents", flat=True)
        )
        assert 100_00 <= account.balance_cents <= 125_00
        assert heard(account).startswith(f"Your balance is {account.balance_cents // 100} dollars.")
    assert account.balance_cents == ends_at, "late and repeated events change nothing they should not"
    taken = -sum(LedgerEntry.objects.filter(corrects=deposit.entry).values_list("amount_cents", flat=True))
    assert 0 <= taken <= deposit.amount_cents


def test_a_warning_about_a_charge_not_credited_yet_is_sent_again_and_then_holds(client, account, stripe_double):
    from tests.payments.test_card_deposits import intent_event

    stripe_double.lose_next(2, "timeout")  # charged; both answers lost: uncertain, its PaymentIntent unknown
    deposit = pay(start(account))
    assert deposit.status == "uncertain"
    [made] = stripe_double.intents.values()
    CardDeposit.objects.filter(pk=deposit.pk).update(payment_intent=made["id"])  # as the listing would find it
    warning = stripe_double.event(
        "radar.early_fraud_warning.created",
        {
            "id": "issfr_2Q",
            "object": "radar.early_fraud_warning",
            "charge": made["latest_charge"],
            "payment_intent": made["id"],
            "fraud_type": "misc",
            "livemode": False,
        },
    )
    assert signed(client, warning).status_code == 500, "not set aside: Stripe sends it again"
    event = intent_event(deposit)
    event["data"]["object"].update(id=made["id"], latest_charge=made["latest_charge"])
    send(client, event)
    send(client, warning)
    deposit.refresh_from_db()
    assert deposit.status == "paid" and deposit.held_for_review


def test_a_dashboard_refund_of_a_charge_whose_answer_was_lost_waits_until_it_is_credited(
    client, account, stripe_double
):
    from tests.payments.test_card_deposits import intent_event

    stripe_double.lose_next(2, "timeout")  # charged; both answers lost: uncertain, its PaymentIntent unknown
    deposit = pay(start(account))
    assert deposit.status == "uncertain" and deposit.payment_intent is None
    [made] = stripe_double.intents.values()
    refund = stripe_double.refund_in_dashboard(made["id"], 25_00)
    created = stripe_double.event("refund.created", refund)
    charge = {"id": made["latest_charge"], "object": "charge", "payment_intent": made["id"], "amount_refunded": 25_00}
    refunded = stripe_double.event("charge.refunded", charge)
    for event in (created, refunded):
        assert signed(client, event).status_code == 500, "not set aside as not ours: Stripe sends it again"
    event = intent_event(deposit)
    event["data"]["object"].update(id=made["id"], latest_charge=made["latest_charge"])
    send(client, event)
    assert balance(account) == 125_00
    for event in (created, refunded):
        send(client, event)
        assert balance(account) == 100_00, "the card has the money back: the member does not keep it too"


def test_an_event_about_a_charge_credited_meanwhile_is_sent_again_not_set_aside(account):
    from payments.errors import NotYet

    deposit = paid_deposit(account)  # credited after the event's first look found no paid deposit
    with pytest.raises(NotYet):
        refunds.not_credited_yet(payment_intent=deposit.payment_intent)


def test_a_refund_after_a_lost_dispute_gives_back_only_what_is_left(account, stripe_double, client):
    deposit = paid_deposit(account, 100_00)
    pi = deposit.payment_intent
    send(client, stripe_double.event("charge.dispute.closed", stripe_double.dispute(pi, 30_00, "lost", [-30_00])))
    assert refunds.refundable_cents(deposit) == 70_00
    refund = refunds.card_deposit_refund(deposit_id=deposit.pk)
    assert refund.amount_cents == 70_00 and balance(account) == 100_00


def test_a_refund_stripe_says_was_already_made_keeps_the_money_taken_back(account, stripe_double):
    """A charge refunded elsewhere (Stripe's dashboard, before its event came): the card has the money back,
    so the member must not get it back too. Stripe's refunds of the charge are read at once: the one made in
    the dashboard is recorded, and ours, which only stood for it, is canceled."""
    deposit = paid_deposit(account)
    made = stripe_double.refund_in_dashboard(deposit.payment_intent, 25_00)
    ours = refunds.card_deposit_refund(deposit_id=deposit.pk)
    assert ours.status == "canceled" and ours.failure_reason == "stood for refunds made in Stripe"
    assert Refund.objects.get(stripe_id=made["id"]).status == "succeeded"
    assert balance(account) == 100_00
    assert not LedgerEntry.objects.filter(kind="returned").exists()
    deposit.refresh_from_db()
    assert "already refunded" in deposit.needs_look


@pytest.mark.parametrize("refunds_readable", [True, False])
def test_a_refund_already_made_in_stripe_that_fails_gives_the_money_back(
    client, account, stripe_double, refunds_readable
):
    """Ours met charge_already_refunded (a dashboard refund came first, its event not yet). Stripe's refunds of
    the charge are read at once, or (a key that may not list refunds, Stripe slow) ours stands in for them,
    the money kept taken, until the charge's list is read; the refund it stood for fails: no refund reached
    the card, so the member has the money back."""
    from io import StringIO

    from django.core.management import call_command

    deposit = paid_deposit(account, 25_00)
    dashboard = stripe_double.refund_in_dashboard(deposit.payment_intent, 25_00, status="pending")
    if not refunds_readable:
        stripe_double.not_permitted.add("/v1/refunds")
    ours = refunds.card_deposit_refund(deposit_id=deposit.pk)
    assert balance(account) == 100_00
    assert ours.status == ("canceled" if refunds_readable else "succeeded")
    failed = stripe_double.event("refund.failed", {**dashboard, "status": "failed"})
    send(client, failed)
    if not refunds_readable:
        assert balance(account) == 100_00  # never given while the card may have it
        stripe_double.not_permitted.clear()
        call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
    for _ in range(2):
        assert balance(account) == 125_00
        send(client, failed)
    ours.refresh_from_db()
    assert ours.status == "canceled" and ours.given_back_by is not None
    send(client, stripe_double.event("refund.created", dashboard))  # a stale word after its failure
    assert balance(account) == 125_00


def test_reconciliation_does_the_rest_when_a_restricted_key_may_not_list_fraud_warnings(account, stripe_double):
    """A key without Radar's permission: refunds, disputes and charges are still reconciled and printed, and
    the run fails, naming the list Stripe refused, so that a scheduled run shows it."""
    from io import StringIO

    from django.core.management import CommandError, call_command

    deposit = paid_deposit(account, 40_00)
    stripe_double.dispute(deposit.payment_intent, 40_00, "lost", moves=[-40_00])  # no event delivered
    stripe_double.fraud_warning(deposit.payment_intent)
    stripe_double.not_permitted.add("/v1/radar/early_fraud_warnings")
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("reconcile_card_deposits", "--resolve", stdout=out)
    assert f"Dispute: dispute {Dispute.objects.get().stripe_id} on card deposit {deposit.pk}: lost" in out.getvalue()
    assert balance(account) == 100_00
    assert "Stripe did not list early fraud warnings:" in str(failed.value)
    assert "rak_radar_early_fraud_warning_read" in str(failed.value)
    assert "Everything else above was done" in str(failed.value)


def test_reconciliation_applies_an_early_fraud_warning_no_event_delivered(account, stripe_double):
    from io import StringIO

    from django.core.management import call_command

    deposit = paid_deposit(account)
    warning = stripe_double.fraud_warning(deposit.payment_intent)
    out = StringIO()
    call_command("reconcile_card_deposits", "--resolve", stdout=out)
    assert f"Fraud warning: early fraud warning on card deposit {deposit.pk}" in out.getvalue()
    deposit.refresh_from_db()
    assert deposit.held_for_review and warning["id"] in deposit.needs_look
    out = StringIO()
    call_command("reconcile_card_deposits", "--resolve", stdout=out)
    assert "Stripe and the card deposits agree." in out.getvalue()


@pytest.mark.usefixtures("stripe_double")
def test_reconciliation_runs_against_the_simulators_processor(account, settings):
    from io import StringIO

    from django.core.management import call_command

    settings.STRIPE_SECRET_KEY = ""
    settings.DEBUG = True
    out = StringIO()
    call_command("reconcile_card_deposits", "--resolve", stdout=out)
    assert "Stripe and the card deposits agree." in out.getvalue()


# A review of events in: --since goes on past an event that waits; no PaymentMethod id kept ------------------


def test_stripe_events_since_goes_on_past_an_event_that_must_wait_for_a_later_one(account, stripe_double):
    from django.core.management import CommandError, call_command

    from tests.payments.test_card_deposits import pay, start

    stripe_double.lose_next(2, "timeout")  # charged; both answers lost: uncertain, its PaymentIntent unknown
    deposit = pay(start(account))
    assert deposit.status == "uncertain" and deposit.payment_intent is None
    [made] = stripe_double.intents.values()
    # A refund of another charge on the same Stripe account, a minute earlier (the webhook was down): while a
    # deposit's answer is lost, an unknown PaymentIntent's event waits, as it may be that deposit's.
    stripe_double.event("refund.created", foreign_refund(int(time.time()) - 60), created=int(time.time()) - 60)
    stripe_double.event("payment_intent.succeeded", made)  # what --since is there to apply
    out = StringIO()
    with pytest.raises(CommandError, match="1 event"):
        call_command("stripe_events", "--since", timezone.localdate().isoformat(), stdout=out)
    assert "refund.created: not applied yet" in out.getvalue()
    deposit.refresh_from_db()
    assert deposit.status == "paid" and balance(account) == 125_00
    # Once the deposit is credited, the refund of the other charge is no longer waited on: set aside as not ours.
    call_command("stripe_events", "--since", timezone.localdate().isoformat(), stdout=StringIO())
    assert StripeEvent.objects.get(event_id__startswith="evt", object_id="re_3QForeign").outcome == "not ours"


def test_an_event_the_service_ignores_keeps_no_id_of_its_object(client, account, stripe_double):
    """`stripe listen` forwards every type: a PaymentMethod's event must not leave its pm_ id in a row."""
    method = {"id": "pm_1QSecretCardToken", "object": "payment_method", "type": "card", "card": {"last4": "4242"}}
    send(client, stripe_double.event("payment_method.attached", method))
    row = StripeEvent.objects.get()
    assert row.outcome == "ignored" and row.object_id == ""
