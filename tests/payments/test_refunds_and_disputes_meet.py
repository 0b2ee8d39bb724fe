"""Refunds and disputes of one charge, in the orders Stripe's events and lists can bring them.

The invariant (payments.clawbacks): what the member lost for a deposit is what left Stripe's balance toward
the card or the bank for its charge (refunds that may still reach the card, and what disputes withdrew and
kept), never more than the deposit, however the same facts arrive. Each test gives the balance Stripe's own
balance for the charge implies. Every deposit is made on an account that had 100 dollars.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts.models import LedgerEntry
from payments import refunds, stripe_api
from payments.models import CardDeposit, Refund
from tests.payments.test_after_the_call import balance, paid_deposit, send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_double")]


def taken(deposit) -> int:
    return -sum(LedgerEntry.objects.filter(corrects=deposit.entry).values_list("amount_cents", flat=True))


def withdrawn(stripe_double, pi: str, cents: int) -> dict:
    return stripe_double.event("charge.dispute.funds_withdrawn", stripe_double.dispute(pi, cents, moves=[-cents]))


def failed(stripe_double, refund: dict) -> dict:
    return stripe_double.event("refund.failed", {**refund, "status": "failed"})


@pytest.mark.parametrize("refunds_readable", [True, False])
@pytest.mark.parametrize("dashboard_first_seen", ["pending", "failed"])
def test_a_dispute_takes_what_a_refund_that_failed_had_stood_for(
    client, account, stripe_double, dashboard_first_seen, refunds_readable
):
    deposit = paid_deposit(account, 25_00)
    pi = deposit.payment_intent
    dashboard = stripe_double.refund_in_dashboard(pi, 25_00, status="pending")
    if not refunds_readable:
        stripe_double.not_permitted.add("/v1/refunds")
    refunds.card_deposit_refund(deposit_id=deposit.pk)  # already refunded: ours stands for it
    assert balance(account) == 100_00
    if dashboard_first_seen == "pending":
        send(client, stripe_double.event("refund.created", dashboard))
    send(client, withdrawn(stripe_double, pi, 25_00))
    assert balance(account) == 100_00
    send(client, failed(stripe_double, dashboard))
    # No refund reached the card; the dispute withdrew 25 dollars and Stripe still holds them.
    assert taken(deposit) == 25_00 and balance(account) == 100_00
    if not refunds_readable:
        # Ours still stands in (the money stays taken, as a refund) until the charge's list is read.
        stripe_double.not_permitted.clear()
        call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
        assert taken(deposit) == 25_00 and balance(account) == 100_00
    assert LedgerEntry.objects.filter(corrects=deposit.entry, kind="dispute").exists()


def test_an_older_failed_refund_is_not_the_one_ours_stood_for(client, account, stripe_double):
    deposit = paid_deposit(account, 25_00)
    pi = deposit.payment_intent
    old = stripe_double.refund_in_dashboard(pi, 25_00, status="failed")
    live = stripe_double.refund_in_dashboard(pi, 25_00, status="pending")
    refunds.card_deposit_refund(deposit_id=deposit.pk)
    for event in (stripe_double.event("refund.created", live), stripe_double.event("refund.failed", old)):
        send(client, event)
        assert taken(deposit) == 25_00 and balance(account) == 100_00  # `live` is on its way to the card


@pytest.mark.parametrize("how", ["reconciliation", "charge.refunded"])
def test_stripes_list_of_refunds_alone_settles_it(client, account, stripe_double, how):
    deposit = paid_deposit(account, 25_00)
    pi = deposit.payment_intent
    stripe_double.refund_in_dashboard(pi, 25_00, status="failed")
    stripe_double.refund_in_dashboard(pi, 25_00, status="pending")
    stripe_double.not_permitted.add("/v1/refunds")
    refunds.card_deposit_refund(deposit_id=deposit.pk)  # stands for them, unread
    stripe_double.not_permitted.clear()
    if how == "reconciliation":
        call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
    else:
        charge = stripe_double.charge_refunded(pi, 25_00)
        send(client, stripe_double.event("charge.refunded", charge))
    assert taken(deposit) == 25_00 and balance(account) == 100_00
    assert Refund.objects.get(failure_reason="stood for refunds made in Stripe").status == "canceled"


def test_a_refund_of_ours_that_stood_for_two_gives_back_for_each_that_fails(client, account, stripe_double):
    deposit = paid_deposit(account, 25_00)
    pi = deposit.payment_intent
    first = stripe_double.refund_in_dashboard(pi, 10_00, status="pending")
    second = stripe_double.refund_in_dashboard(pi, 15_00, status="pending")
    refunds.card_deposit_refund(deposit_id=deposit.pk)
    assert balance(account) == 100_00
    send(client, failed(stripe_double, second))
    assert balance(account) == 115_00  # `first` is still on its way to the card
    send(client, failed(stripe_double, first))
    assert taken(deposit) == 0 and balance(account) == 125_00


@pytest.mark.parametrize("refund_fails", ["before the reinstatement", "after it"])
def test_a_partial_reinstatement_and_a_refund_that_failed_end_the_same_in_either_order(
    client, account, stripe_double, refund_fails
):
    deposit = paid_deposit(account, 40_00)
    pi = deposit.payment_intent
    stripe_double.refund_status = "pending"
    ours = refunds.card_deposit_refund(deposit_id=deposit.pk)
    send(client, withdrawn(stripe_double, pi, 40_00))
    partly = stripe_double.dispute(pi, 40_00, "won", [-40_00, 30_00])
    refund_failed = failed(stripe_double, stripe_double.refunds[ours.stripe_id])
    events = [stripe_double.event("charge.dispute.funds_reinstated", partly), refund_failed]
    for event in events if refund_fails == "after it" else reversed(events):
        send(client, event)
    assert taken(deposit) == 10_00 and balance(account) == 130_00  # Stripe kept 10 dollars
    # Late copies of facts already applied change nothing.
    send(
        client, stripe_double.event("charge.dispute.funds_withdrawn", stripe_double.dispute(pi, 40_00, moves=[-40_00]))
    )
    send(client, stripe_double.event("charge.dispute.closed", partly))
    assert balance(account) == 130_00


@pytest.mark.parametrize("refund", ["before the dispute", "while the dispute held the money"])
def test_a_partial_refund_and_a_partial_reinstatement(client, account, stripe_double, refund):
    deposit = paid_deposit(account, 40_00)
    pi = deposit.payment_intent
    if refund == "before the dispute":
        send(client, stripe_double.event("refund.created", stripe_double.refund_in_dashboard(pi, 10_00)))
    send(client, withdrawn(stripe_double, pi, 40_00))
    if refund == "while the dispute held the money":
        send(client, stripe_double.event("refund.created", stripe_double.refund_in_dashboard(pi, 10_00)))
    partly = stripe_double.dispute(pi, 40_00, "won", [-40_00, 30_00])
    send(client, stripe_double.event("charge.dispute.funds_reinstated", partly))
    # Stripe's balance for the charge: -10 (refund) -40 (withdrawn) +30 (reinstated) = -20.
    assert taken(deposit) == 20_00 and balance(account) == 120_00


def test_a_won_dispute_a_failed_refund_and_late_events_never_raise(client, account, stripe_double):
    deposit = paid_deposit(account, 25_00)
    pi = deposit.payment_intent
    send(client, withdrawn(stripe_double, pi, 25_00))
    first = stripe_double.refund_in_dashboard(pi, 25_00)
    send(client, stripe_double.event("refund.created", first))
    won = stripe_double.dispute(pi, 25_00, "won", [-25_00, 25_00])
    send(client, stripe_double.event("charge.dispute.funds_reinstated", won))
    send(client, failed(stripe_double, first))
    send(client, stripe_double.event("charge.dispute.closed", won))
    assert balance(account) == 125_00  # no refund reached the card; the dispute was won
    old = stripe_double.refund_in_dashboard(pi, 25_00, status="failed")  # its events lost
    live = stripe_double.refund_in_dashboard(pi, 25_00, status="pending")
    refunds.card_deposit_refund(deposit_id=deposit.pk)
    assert balance(account) == 100_00
    send(client, failed(stripe_double, live))
    assert balance(account) == 125_00
    send(client, stripe_double.event("refund.failed", old))  # answered 200 (send checks it)
    assert balance(account) == 125_00


# A refund of ours standing in for refunds made elsewhere, while Stripe's list of them cannot be read ----------


def stood_in_unread(stripe_double, deposit, *refunds_made: tuple[int, str]) -> list[dict]:
    made = [
        stripe_double.refund_in_dashboard(deposit.payment_intent, cents, status=status)
        for cents, status in refunds_made
    ]
    stripe_double.not_permitted.add("/v1/refunds")  # a key without the permission, or Stripe slow
    ours = refunds.card_deposit_refund(deposit_id=deposit.pk, clawback=True)
    assert ours.status == "succeeded" and ours.failure_reason == "already refunded in Stripe"
    return made


def test_a_refund_recorded_while_ours_stands_in_never_gives_back_money_the_card_has(client, account, stripe_double):
    deposit = paid_deposit(account, 25_00)
    first, second = stood_in_unread(stripe_double, deposit, (10_00, "pending"), (15_00, "pending"))
    for made in (first, second):
        send(client, stripe_double.event("refund.created", made))
        assert balance(account) == 100_00  # 25 dollars are on their way to the card


def test_an_older_failed_refund_seen_while_ours_stands_in_changes_nothing(client, account, stripe_double):
    deposit = paid_deposit(account, 25_00)
    old, _live = stood_in_unread(stripe_double, deposit, (25_00, "failed"), (25_00, "pending"))
    send(client, stripe_double.event("refund.failed", old))
    assert taken(deposit) == 25_00 and balance(account) == 100_00


@pytest.mark.parametrize("then", ["reconciliation", "the next refund event"])
def test_the_charges_whole_list_ends_the_standing_in(client, account, stripe_double, then):
    """The refund ours stood for fails while the list cannot be read: the money stays taken (never given while
    the card may have it); once the list is read, it comes back. No clock is compared."""
    deposit = paid_deposit(account, 25_00)
    [made] = stood_in_unread(stripe_double, deposit, (25_00, "pending"))
    send(client, stripe_double.event("refund.created", made))
    send(client, failed(stripe_double, made))
    assert balance(account) == 100_00
    stripe_double.not_permitted.clear()
    if then == "reconciliation":
        call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
    else:
        send(client, failed(stripe_double, made))  # Stripe sends an event again, or another of the charge's
    assert taken(deposit) == 0 and balance(account) == 125_00
    assert Refund.objects.get(failure_reason="stood for refunds made in Stripe").status == "canceled"


# Version 3's connector charges never credited: a refund of theirs moves no member money -----------------


def refund_elsewhere(stripe_double, *, payment_intent: str | None) -> None:
    """A refund of version 3's connector charge made outside the service (Stripe's dashboard, a script)."""
    stripe_double.refunds["re_elsewhere"] = {
        "id": "re_elsewhere",
        "object": "refund",
        "amount": 25_00,
        "charge": "ch_connector_1",
        "payment_intent": payment_intent,
        "created": 1,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {},
    }


def uncredited(account):
    from payments.models import CardDeposit
    from tests.payments.test_card_deposits import start

    deposit = start(account, 25_00)
    CardDeposit.objects.filter(pk=deposit.pk).update(charged_by="connector")
    return deposit


def test_a_version_3_refund_stripe_refuses_fails(account, stripe_double):
    deposit = uncredited(account)
    stripe_double.refund_refusal = "charge_disputed"
    refund = refunds.charge_refund_uncredited(deposit_id=deposit.pk, reference="ch_connector_1")
    assert refund.status == "failed" and balance(account) == 100_00


def test_a_version_3_refund_that_fails_later_is_applied(client, account, stripe_double):
    deposit = uncredited(account)
    stripe_double.refund_status = "pending"
    refund = refunds.charge_refund_uncredited(deposit_id=deposit.pk, reference="ch_connector_1")
    made = stripe_double.refunds[refund.stripe_id]
    send(client, stripe_double.event("refund.failed", {**made, "status": "failed"}))
    assert Refund.objects.get(pk=refund.pk).status == "failed" and balance(account) == 100_00


def test_a_version_3_refund_whose_answer_was_lost_is_finished_by_reconciliation(account, stripe_double):
    deposit = uncredited(account)
    stripe_double.down = True
    refunds.charge_refund_uncredited(deposit_id=deposit.pk, reference="ch_connector_1")
    stripe_double.down = False
    stripe_double.refund_refusal = "charge_disputed"
    call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
    assert Refund.objects.get().status == "failed"


# Locks and Stripe's lists, and what a whole list can end (a fourth review) ----------------------------------


def _spy(monkeypatch, seen):
    """Where Stripe is asked: how many transactions of ours are open then, beyond the test's own."""
    baseline = len(connection.atomic_blocks)
    real_list = stripe_api.refunds_of

    def listed(reference, **kwargs):
        seen.append(len(connection.atomic_blocks) - baseline)
        return real_list(reference, **kwargs)

    monkeypatch.setattr(stripe_api, "refunds_of", listed)


def test_a_refund_event_while_ours_stands_in_asks_stripe_with_no_lock_held(client, account, stripe_double, monkeypatch):
    deposit = paid_deposit(account, 25_00)
    [made] = stood_in_unread(stripe_double, deposit, (25_00, "pending"))
    send(client, stripe_double.event("refund.created", made))  # recorded; the list still cannot be read
    stripe_double.not_permitted.clear()
    seen: list = []
    _spy(monkeypatch, seen)
    send(client, stripe_double.event("refund.updated", {**made, "status": "succeeded"}))
    assert seen == [0]  # Stripe asked once, with no transaction of ours open: no lock held while it waits


def test_a_dashboard_refund_event_while_ours_stands_in_asks_stripe_with_no_lock_held(
    client, account, stripe_double, monkeypatch
):
    deposit = paid_deposit(account, 25_00)
    [made] = stood_in_unread(stripe_double, deposit, (25_00, "pending"))
    stripe_double.not_permitted.clear()
    seen: list = []
    _spy(monkeypatch, seen)
    send(client, stripe_double.event("refund.created", made))
    assert seen == [0]


def test_a_version_3_refund_stripe_says_was_already_refunded_stands_in_no_longer_than_its_list(account, stripe_double):
    deposit = uncredited(account)
    refund_elsewhere(stripe_double, payment_intent=None)
    stripe_double.refund_refusal = "charge_already_refunded"
    ours = refunds.charge_refund_uncredited(deposit_id=deposit.pk, reference="ch_connector_1")
    # The whole list, read at once, ends the standing in, as for a credited deposit (no member money moves).
    assert ours.status == "canceled" and ours.failure_reason == "stood for refunds made in Stripe"
    assert balance(account) == 100_00


def test_reconciliation_stops_on_not_yet_from_a_version_3_stand_in_while_a_member_is_paying(account, stripe_double):
    deposit = uncredited(account)
    refund_elsewhere(stripe_double, payment_intent="pi_connector_1")
    stripe_double.refund_refusal = "charge_already_refunded"
    refunds.charge_refund_uncredited(deposit_id=deposit.pk, reference="ch_connector_1")
    # Another deposit is being charged right now (its PaymentIntent not known yet).
    from tests.payments.test_card_deposits import start

    paying = start(account, 10_00, call_sid="CA" + "1" * 32)
    CardDeposit.objects.filter(pk=paying.pk).update(status="charging", charging_started=timezone.now())
    call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())  # runs: that deposit waits


def test_one_stand_in_whose_list_stripe_refuses_stops_reconciliation_finding_other_deposits_refunds(
    client, account, stripe_double, monkeypatch
):
    """E.g. a stand-in left from test mode after the keys became live: Stripe answers 404 for its PaymentIntent."""
    stuck = paid_deposit(account, 25_00)
    stood_in_unread(stripe_double, stuck, (25_00, "pending"))
    stripe_double.not_permitted.clear()
    other = paid_deposit(account, 30_00)
    stripe_double.refund_in_dashboard(other.payment_intent, 30_00)  # its events never came
    real = stripe_api.refunds_of

    def refunds_of(reference, **kwargs):
        if reference == stuck.payment_intent:
            raise stripe_api.StripeFailed("InvalidRequestError 404 - No such payment_intent")
        return real(reference, **kwargs)

    monkeypatch.setattr(stripe_api, "refunds_of", refunds_of)
    with pytest.raises(CommandError, match=f"refunds of card deposit {stuck.pk}: InvalidRequestError 404"):
        call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
    assert taken(other) == 30_00  # the other deposit's dashboard refund is still found


def test_a_list_read_before_a_stand_in_was_made_ends_it(client, account, stripe_double, monkeypatch):
    """charge.refunded (for an earlier partial refund) reads the list; meanwhile a dashboard refund of the rest is
    made, an operator's refund is refused as already refunded and stands in (its own read failing); then the
    handler's stood_in_done cancels that stand-in on a list that never showed the dashboard refund."""
    deposit = paid_deposit(account, 25_00)
    pi = deposit.payment_intent
    early = stripe_double.refund_in_dashboard(pi, 5_00)
    send(client, stripe_double.event("refund.created", early))
    assert balance(account) == 120_00
    real = stripe_api.refunds_of
    late = {}

    def refunds_of(reference, **kwargs):
        listed = real(reference, **kwargs)
        if not late:
            late["made"] = stripe_double.refund_in_dashboard(pi, 20_00)  # the rest, just after the read
            stripe_double.not_permitted.add("/v1/refunds")
            ours = refunds.card_deposit_refund(deposit_id=deposit.pk, clawback=True)
            assert ours.failure_reason == "already refunded in Stripe"
            stripe_double.not_permitted.clear()
        return listed

    monkeypatch.setattr(stripe_api, "refunds_of", refunds_of)
    charge = stripe_double.charge_refunded(pi, 5_00)
    send(client, stripe_double.event("charge.refunded", charge))
    # Stripe sent all 25 dollars to the card: the list read before ours stood in does not end it.
    assert balance(account) == 100_00


# A fifth review: version 3's refunds with no charge, and what an operator is told of a stand-in -------------


def v3_refunded_against_no_charge(account, stripe_double, cents: int = 10_00) -> CardDeposit:
    """Version 3 credited a deposit with a made-up missing-N reference (its connector's charge is described
    "MyiBot deposit N"), then refunded it: it took the money and asked Stripe to refund a charge Stripe did not
    know. Migration 0003 emptied the reference and left the refund requested."""
    from accounts import ledger

    deposit = paid_deposit(account, cents)
    taken_back = ledger.card_money_take_back(entry=deposit.entry, amount_cents=cents, kind=LedgerEntry.Kind.REFUND)
    CardDeposit.objects.filter(pk=deposit.pk).update(charged_by="connector", payment_intent=None, reference=None)
    Refund.objects.create(deposit=deposit, amount_cents=cents, status="requested", taken_by=taken_back)
    return CardDeposit.objects.get(pk=deposit.pk)


def test_a_version_3_refund_against_no_charge_is_paired_with_its_charge_and_sent_to_the_card(account, stripe_double):
    v3 = v3_refunded_against_no_charge(account, stripe_double)
    charge = next(i["latest_charge"] for i in stripe_double.intents.values())
    other = paid_deposit(account, 25_00)
    stripe_double.refund_in_dashboard(other.payment_intent, 25_00)  # its events never came
    out = StringIO()
    call_command("reconcile_card_deposits", "--resolve", stdout=out)
    ours = Refund.objects.get(deposit=v3)
    assert ours.status == "succeeded" and stripe_double.refunds[ours.stripe_id]["charge"] == charge
    assert CardDeposit.objects.get(pk=v3.pk).reference == charge and taken(v3) == 10_00
    assert taken(other) == 25_00 and balance(account) == 100_00  # the run went on past it


def test_a_version_3_refund_whose_charge_was_refunded_in_stripe_keeps_the_money_taken(account, stripe_double):
    """The operator, told version 3's refund failed, refunded the charge in Stripe's dashboard: the card has
    the money, so the member must not get it back too."""
    v3 = v3_refunded_against_no_charge(account, stripe_double)
    pi = next(iter(stripe_double.intents))
    stripe_double.refund_in_dashboard(pi, 10_00)
    call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
    ours = Refund.objects.get(deposit=v3, stripe_id__isnull=True)
    assert (ours.status, ours.failure_reason) == ("canceled", "stood for refunds made in Stripe")
    assert taken(v3) == 10_00 and balance(account) == 100_00
    call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
    assert balance(account) == 100_00


def test_a_version_3_refund_with_no_charge_in_stripe_fails_and_gives_the_money_back(account, stripe_double):
    v3 = v3_refunded_against_no_charge(account, stripe_double)
    stripe_double.intents.clear()  # Stripe holds no charge of the deposit at all
    out = StringIO()
    call_command("reconcile_card_deposits", "--resolve", stdout=out)
    ended = Refund.objects.get(deposit=v3)
    assert (ended.status, ended.failure_reason) == ("failed", refunds.NO_CHARGE)
    assert taken(v3) == 0 and balance(account) == 110_00
    assert "Stripe holds no charge" in CardDeposit.objects.get(pk=v3.pk).needs_look
    assert f"Refund of card deposit {v3.pk}: failed" in out.getvalue()
    call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())  # said once
    assert balance(account) == 110_00 and LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REFUND_RETURNED).count() == 1


def test_a_version_3_refund_whose_charge_another_deposit_names_is_left_to_an_operator(account, stripe_double):
    v3 = v3_refunded_against_no_charge(account, stripe_double)
    charge = next(i["latest_charge"] for i in stripe_double.intents.values())
    other = paid_deposit(account, 25_00)
    CardDeposit.objects.filter(pk=other.pk).update(reference=charge)
    call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
    assert Refund.objects.get(deposit=v3).status == "requested" and taken(v3) == 10_00
    assert "not this deposit's alone" in CardDeposit.objects.get(pk=v3.pk).needs_look
    assert stripe_double.refunds == {}  # nothing asked of Stripe for it


def test_a_version_3_refund_stays_taken_while_stripes_charges_cannot_be_read(account, stripe_double):
    v3 = v3_refunded_against_no_charge(account, stripe_double)
    stripe_double.down = True
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("reconcile_card_deposits", "--resolve", stdout=out)
    assert Refund.objects.get(deposit=v3).status == "requested" and taken(v3) == 10_00
    assert f"Refund of card deposit {v3.pk} still requested" in out.getvalue()


def test_the_operator_is_told_a_refund_stood_in_never_that_its_money_was_given_back(account, stripe_double):
    """A whole-charge refund made in Stripe's dashboard, its events not come yet: the operator's refund is
    answered "already refunded", stands in, and ends as soon as Stripe's list is read. The money stays taken
    (the card has it), and neither the admin's history nor the command says it was given back."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.auth.models import Group, User

    from tests.payments.test_admin import act, staff_client

    deposit = paid_deposit(account, 25_00)
    stripe_double.refund_in_dashboard(deposit.payment_intent, 25_00)
    user = User.objects.create_user("olivia", password="not-used-here-9", is_staff=True)
    user.groups.add(Group.objects.get(name="Operators"))
    act(staff_client(user), "refund", deposit.pk)
    ours = Refund.objects.get(operator=user)
    assert ours.failure_reason == "stood for refunds made in Stripe" and refunds.stood_in(ours)
    assert balance(account) == 100_00
    said = LogEntry.objects.latest("pk").change_message
    assert "given back" not in said and "already refunded" in said, said

    second = paid_deposit(account, 25_00)
    stripe_double.refund_in_dashboard(second.payment_intent, 25_00)
    out = StringIO()
    call_command("refund_card_deposit", "--deposit", str(second.pk), stdout=out)  # no CommandError: the card has it
    assert "already refunded" in out.getvalue() and "back on" not in out.getvalue()
    assert balance(account) == 100_00


def test_a_second_already_refunded_answer_does_not_stand_in_again(account, stripe_double):
    """The admin and reconciliation asked Stripe at once and both heard "already refunded": the list read after
    the first ended the standing in; the second answer must not start it again (and take money again)."""
    deposit = paid_deposit(account, 25_00)
    stripe_double.refund_in_dashboard(deposit.payment_intent, 25_00)
    refunds.card_deposit_refund(deposit_id=deposit.pk)
    ours = Refund.objects.get(stripe_id__isnull=True)
    assert ours.status == "canceled"
    refunds._already_refunded(ours)
    ours.refresh_from_db()
    assert (ours.status, ours.failure_reason) == ("canceled", "stood for refunds made in Stripe")
    assert balance(account) == 100_00 and taken(deposit) == 25_00


def test_a_deposit_its_charges_description_names_is_never_reported_as_having_no_charge(account, stripe_double):
    """Version 3's missing-N deposit, credited, its connector's charge described "MyiBot deposit N": it has a
    charge (unpaired), and a failed refund of ours gave the card nothing, so Stripe's refund is reported."""
    from payments import reconciliation

    deposit = paid_deposit(account, 10_00)
    CardDeposit.objects.filter(pk=deposit.pk).update(charged_by="connector", payment_intent=None, reference=None)
    assert [f.what for f in reconciliation.connector_findings(days=7)] == []
    Refund.objects.create(deposit=deposit, amount_cents=10_00, status="failed")
    stripe_double.refund_in_dashboard(next(iter(stripe_double.intents)), 10_00)
    assert [f.what for f in reconciliation.connector_findings(days=7)] == [reconciliation.REFUNDED_IN_STRIPE]


# An operators' review: version 3's --credit and --refund of a charge another deposit names ----------------


def v3_charge_named_by_another(account, stripe_double, *, named_as: str):
    """Version 3 credited deposit `other` for a charge, naming it by its charge id or its PaymentIntent's; the
    connector described the same charge "MyiBot deposit N" for deposit N, never credited."""
    from tests.payments.test_card_deposits import start

    other = paid_deposit(account, 25_00)
    pi = other.payment_intent
    charge = stripe_double.charge_of(pi)
    CardDeposit.objects.filter(pk=other.pk).update(
        charged_by="connector", payment_intent=None, reference=charge if named_as == "charge" else pi
    )
    uncredited = start(account, 25_00, call_sid="CA" + "7" * 32)
    CardDeposit.objects.filter(pk=uncredited.pk).update(charged_by="connector")
    stripe_double.intents[pi]["description"] = uncredited.description
    return uncredited, charge


@pytest.mark.parametrize("named_as", ["charge", "payment_intent"])
@pytest.mark.parametrize("settle", ["--credit", "--refund"])
def test_a_charge_another_deposit_names_is_never_credited_or_refunded_again(account, stripe_double, named_as, settle):
    from payments import charges, reconciliation

    uncredited, charge = v3_charge_named_by_another(account, stripe_double, named_as=named_as)
    assert balance(account) == 125_00  # the one charge, credited once, to the other deposit
    out = StringIO()
    call_command("reconcile_card_deposits", stdout=out)
    assert f"{reconciliation.NAMED_ELSEWHERE}: charge {charge}" in out.getvalue()
    with pytest.raises(CommandError, match="not a card deposit charged but never credited"):
        call_command("reconcile_card_deposits", settle, charge, stdout=StringIO())
    assert stripe_double.refunds == {} and balance(account) == 125_00
    # And the services themselves refuse, whoever calls them.
    references = {charge, next(iter(stripe_double.intents))}
    with pytest.raises(charges.UnknownDeposit):
        charges.connector_credit(
            deposit_id=uncredited.pk, reference=charge, card_type="visa", card_last4="4242", references=references
        )
    with pytest.raises(refunds.AlreadyRefunded):
        refunds.charge_refund_uncredited(deposit_id=uncredited.pk, reference=charge, references=references)
    assert stripe_double.refunds == {} and LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CARD).count() == 1


def test_reconcile_credit_credits_a_version_3_charge_never_credited(account, stripe_double):
    """reconcile_card_deposits --credit REF, the whole way: the connector's charge, described for a deposit
    never credited, is credited to it once."""
    from tests.payments.test_card_deposits import start

    source = paid_deposit(account, 25_00)  # only for a charge in Stripe; then nothing of ours names it
    pi = source.payment_intent
    charge = stripe_double.charge_of(pi)
    CardDeposit.objects.filter(pk=source.pk).update(charged_by="connector", payment_intent=None, reference=None)
    uncredited = start(account, 25_00, call_sid="CA" + "6" * 32)
    CardDeposit.objects.filter(pk=uncredited.pk).update(charged_by="connector")
    stripe_double.intents[pi]["description"] = uncredited.description
    out = StringIO()
    call_command("reconcile_card_deposits", "--credit", charge, stdout=out)
    assert f"Credited card deposit {uncredited.pk} of $25.00" in out.getvalue()
    credited = CardDeposit.objects.get(pk=uncredited.pk)
    assert credited.status == "paid" and credited.reference == charge and balance(account) == 150_00
    with pytest.raises(CommandError):
        call_command("reconcile_card_deposits", "--credit", charge, stdout=StringIO())  # once
    assert balance(account) == 150_00
