"""refund_card_deposit and reconcile_card_deposits, with Stripe answered at the HTTP layer (responses)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import responses
from django.core.management import CommandError, call_command

from accounts.models import LedgerEntry
from payments.models import CardDeposit
from tests.payments.test_card_deposits import paid, refund_body, start

pytestmark = pytest.mark.django_db

CHARGES = "https://api.stripe.com/v1/charges"


def charge_body(charge_id: str, deposit_pk: int, *, cents: int = 2500, refunded=False, disputed=False, pi=""):
    """Shaped like the Charge object in Stripe's API reference (https://docs.stripe.com/api/charges/object)."""
    return {
        "id": charge_id,
        "object": "charge",
        "amount": cents,
        "amount_refunded": cents if refunded else 0,
        "created": int(time.time()) - 60,
        "currency": "usd",
        "description": f"MyiBot deposit {deposit_pk}",
        "disputed": disputed,
        "paid": True,
        "payment_intent": pi or None,
        "payment_method_details": {"card": {"brand": "visa", "last4": "4242"}, "type": "card"},
        "refunded": refunded,
        "status": "succeeded",
    }


def charge_list(*charges: dict) -> dict:
    return {"object": "list", "data": list(charges), "has_more": False, "url": "/v1/charges"}


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("command", [["refund_card_deposit", "1"], ["reconcile_card_deposits"]])
def test_both_refuse_plainly_without_a_stripe_key(settings, command):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="STRIPE_SECRET_KEY is not set"):
        call_command(*command)


def test_refund_card_deposit_refunds_and_says_so(account, stripe_api):
    deposit = paid(start(account))
    stripe_api.post("https://api.stripe.com/v1/refunds", json=refund_body("ch_3Pq0a1"))
    said = run("refund_card_deposit", str(deposit.entry_id))
    assert f"Refunded card deposit {deposit.pk} of $25.00 to the card (Stripe refund re_3Pq0a1)" in said
    with pytest.raises(CommandError, match="already refunded"):
        call_command("refund_card_deposit", str(deposit.entry_id))


def test_refund_card_deposit_refuses_what_is_not_a_card_deposit(account, stripe_api):
    entry = LedgerEntry.objects.get(account=account)
    with pytest.raises(CommandError, match="not a card deposit"):
        call_command("refund_card_deposit", str(entry.pk))
    with pytest.raises(CommandError, match="is a number"):
        call_command("refund_card_deposit", "12a")


def test_refund_card_deposit_asks_for_confirm_above_the_deposit_confirmation_amount(account, stripe_api, settings):
    settings.DEPOSIT_CONFIRM_DOLLARS = 20
    deposit = paid(start(account))
    with pytest.raises(CommandError, match="--confirm"):
        call_command("refund_card_deposit", str(deposit.entry_id))
    assert len(stripe_api.calls) == 0


def test_reverse_deposit_points_a_card_deposit_to_refund_card_deposit(account):
    deposit = paid(start(account))
    with pytest.raises(CommandError, match=f"refund_card_deposit {deposit.entry_id}"):
        call_command("reverse_deposit", str(deposit.entry_id))


def lost_deposit(account) -> CardDeposit:
    """A deposit whose <Pay> action request never arrived, long enough ago for <Pay> to have ended."""
    lost = start(account)
    CardDeposit.objects.filter(pk=lost.pk).update(created=lost.created - timedelta(minutes=30))
    lost.refresh_from_db()
    return lost


def test_reconcile_leaves_a_deposit_still_inside_its_pay_alone(account, stripe_api):
    paying = start(account)  # charged a moment ago; its action request is on its way
    stripe_api.get(CHARGES, json=charge_list(charge_body("ch_new", paying.pk)))
    assert "agree" in run("reconcile_card_deposits")


def test_reconcile_finds_a_charge_never_credited_and_credit_settles_it(account, stripe_api):
    lost = lost_deposit(account)
    stripe_api.get(CHARGES, json=charge_list(charge_body("ch_lost", lost.pk)))
    said = run("reconcile_card_deposits")
    assert f"charged, never credited: charge ch_lost of $25.00 (MyiBot deposit {lost.pk})" in said
    said = run("reconcile_card_deposits", "--credit", "ch_lost")
    lost.refresh_from_db()
    assert lost.status == "paid" and lost.reference == "ch_lost" and lost.card_last4 == "4242"
    assert f"as ledger entry {lost.entry_id} (charge ch_lost)" in said
    account.refresh_from_db()
    assert account.balance_cents == 125_00


def test_reconcile_refund_gives_an_uncredited_charge_back(account, stripe_api):
    lost = lost_deposit(account)
    stripe_api.get(CHARGES, json=charge_list(charge_body("ch_lost", lost.pk)))
    stripe_api.post("https://api.stripe.com/v1/refunds", json=refund_body("ch_lost"))
    said = run("reconcile_card_deposits", "--refund", "ch_lost")
    lost.refresh_from_db()
    assert lost.status == "failed" and lost.entry is None and "Refunded charge ch_lost" in said
    account.refresh_from_db()
    assert account.balance_cents == 100_00


def test_reconcile_finds_credited_deposits_refunded_or_disputed_in_stripe_or_without_a_charge(account, stripe_api):
    refunded = paid(start(account), reference="ch_refunded")
    disputed = paid(start(account, call_sid="CA2"), reference="pi_disputed")
    orphan = paid(start(account, call_sid="CA3"), reference="ch_nowhere")
    stripe_api.get(
        CHARGES,
        json=charge_list(
            charge_body("ch_refunded", refunded.pk, refunded=True),
            charge_body("ch_other", disputed.pk, disputed=True, pi="pi_disputed"),
        ),
    )
    said = run("reconcile_card_deposits", "--days", "3")
    assert "credited, refunded in Stripe: charge ch_refunded" in said
    assert "credited, disputed in Stripe: charge ch_other" in said
    assert f"credited, no charge in Stripe: card deposit {orphan.pk}" in said
    assert "3 to look at" in said


def test_reconcile_says_when_all_agree(account, stripe_api):
    deposit = paid(start(account), reference="ch_fine")
    stripe_api.get(CHARGES, json=charge_list(charge_body("ch_fine", deposit.pk)))
    assert "agree" in run("reconcile_card_deposits")
    assert CardDeposit.objects.get().status == "paid"


def test_reconcile_refuses_to_settle_a_charge_that_was_credited(account, stripe_api):
    deposit = paid(start(account), reference="ch_fine")
    stripe_api.get(CHARGES, json=charge_list(charge_body("ch_fine", deposit.pk)))
    with pytest.raises(CommandError, match="not a card deposit charged but never credited"):
        call_command("reconcile_card_deposits", "--credit", "ch_fine")


@pytest.fixture
def stripe_api(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_123"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield mocked
