"""refund_card_deposit and reconcile_card_deposits, with Stripe answered at the HTTP layer (tests/stripe_double.py)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import LedgerEntry
from payments.models import CardDeposit, Refund
from tests.payments.test_card_deposits import balance, pay, start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_double")]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("command", [["refund_card_deposit", "1"], ["reconcile_card_deposits"]])
def test_both_refuse_plainly_without_a_stripe_key(settings, command):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="STRIPE_SECRET_KEY is not set"):
        call_command(*command)


def test_refund_card_deposit_refunds_and_says_so(account):
    deposit = pay(start(account))
    said = run("refund_card_deposit", str(deposit.entry_id))
    refund = Refund.objects.get()
    assert (
        f"Refunded card deposit {deposit.pk} of $25.00 to the card (Stripe refund {refund.stripe_id}, succeeded)"
        in said
    )
    assert balance(account) == 100_00 and refund.taken_by.kind == LedgerEntry.Kind.REFUND
    with pytest.raises(CommandError, match="already refunded"):
        call_command("refund_card_deposit", "--deposit", str(deposit.pk))


def test_refund_without_stripe_changes_nothing(account, settings):
    deposit = pay(start(account))
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="Nothing was changed"):
        call_command("refund_card_deposit", "--deposit", str(deposit.pk))
    assert balance(account) == 125_00 and not Refund.objects.exists()


def test_refund_of_spent_money_needs_clawback_and_leaves_the_member_owing(account):
    deposit = pay(start(account))
    account.refresh_from_db()
    from accounts.models import Account

    Account.objects.filter(pk=account.pk).update(balance_cents=10_00)  # spent (the test skips the transfer)
    with pytest.raises(CommandError, match="--clawback"):
        call_command("refund_card_deposit", str(deposit.entry_id))
    run("refund_card_deposit", str(deposit.entry_id), "--clawback")
    account.refresh_from_db()
    assert account.balance_cents == -15_00 and account.owed_cents == 15_00


def test_a_refund_stripe_refuses_gives_the_money_back_and_the_command_fails(account, stripe_double):
    deposit = pay(start(account))
    stripe_double.refund_refusal = "resource_missing"
    with pytest.raises(CommandError, match=r"Stripe refused the refund .*resource_missing.*: the \$25\.00 is back"):
        run("refund_card_deposit", str(deposit.entry_id))
    assert balance(account) == 125_00
    refund = Refund.objects.get()
    assert refund.status == "failed" and refund.given_back_by.kind == LedgerEntry.Kind.REFUND_RETURNED


def test_a_lost_refund_answer_is_finished_by_reconciliation_without_asking_twice(account, stripe_double):
    deposit = pay(start(account))
    from payments import stripe_api

    real = stripe_api.refund_create

    def made_then_lost(**kwargs):
        real(**kwargs)
        raise stripe_api.StripeFailed("APIConnectionError - -")

    with mock.patch.object(stripe_api, "refund_create", side_effect=made_then_lost):
        assert "answer was lost" in run("refund_card_deposit", str(deposit.entry_id))
    assert Refund.objects.get().status == "requested"
    run("reconcile_card_deposits", "--resolve")
    refund = Refund.objects.get()
    assert refund.status == "succeeded" and refund.stripe_id and len(stripe_double.refunds) == 1
    assert balance(account) == 100_00


def test_reconcile_reports_then_resolves_an_uncertain_deposit(account, stripe_double):
    stripe_double.lose_next(2, "timeout")
    deposit = pay(start(account))
    # Its charge may still be under way: named, never "agree", and left for the next run.
    said = run("reconcile_card_deposits", "--resolve")
    assert f"Too recent: card deposit {deposit.pk} (uncertain)" in said and "agree" not in said
    assert balance(account) == 100_00
    CardDeposit.objects.filter(pk=deposit.pk).update(charging_started=timezone.now() - timedelta(minutes=5))
    assert f"Credited (would be: run with --resolve): card deposit {deposit.pk}" in run("reconcile_card_deposits")
    assert balance(account) == 100_00
    assert f"Credited: card deposit {deposit.pk}" in run("reconcile_card_deposits", "--resolve")
    assert balance(account) == 125_00
    assert "agree" in run("reconcile_card_deposits", "--resolve")
