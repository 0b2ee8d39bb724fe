"""Card deposits under real concurrency: threads, transactions and row locks on PostgreSQL."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings

from accounts import selectors as account_selectors
from accounts.models import Account, LedgerEntry
from payments import charges, errors, limits
from payments.models import CardDeposit, ChargedBy, DepositAttempt
from tests.accounts.test_concurrency import all_at_once, make_account
from tests.conftest import postgres_only

pytestmark = [
    postgres_only("row locks between real threads"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("stripe_double"),
]

LINE = charges.deposit_line("+12025550142")


def pay(deposit: CardDeposit):
    paid = charges.PayResult(result="success", token="pm_card_visa", card_number="xxxx4242")
    return lambda: charges.card_deposit_paid(
        deposit_id=deposit.pk, call_sid=deposit.call_sid, paid=paid, deadline=time.monotonic() + 13
    )


def test_six_workers_answering_one_action_request_charge_and_credit_once(stripe_double):
    account = make_account("+12025000011", "100011", 0)
    deposit = charges.card_deposit_start(account=account, amount_cents=25_00, call_sid="CA1", line=LINE, vouched=True)
    results = all_at_once([pay(deposit) for _ in range(6)])
    assert all(isinstance(result, CardDeposit) and result.pk == deposit.pk for result in results), results
    assert len(stripe_double.charge_requests) == 1, "one request charged; the others found the token taken"
    account.refresh_from_db()
    assert account.balance_cents == 25_00 == account_selectors.ledger_balance_cents(account=account)
    assert LedgerEntry.objects.filter(kind="card").count() == 1


@pytest.mark.parametrize("same_line", [True, False])
def test_twenty_confirm_presses_at_once_reach_one_pay(same_line):
    """From one line (item 3 of the review: 20 calls from one number), and from 20 lines to one member."""
    account = make_account("+12025000012", "100012", 0)

    def start(number: int):
        line = LINE if same_line else charges.deposit_line(f"+120255501{number:02d}")
        return lambda: charges.card_deposit_start(
            account=Account.objects.get(pk=account.pk),
            amount_cents=25_00,
            call_sid=f"CA{number}",
            line=line,
            vouched=True,
        )

    results = all_at_once([start(n) for n in range(20)])
    started = [r for r in results if isinstance(r, CardDeposit)]
    busy = [r for r in results if isinstance(r, errors.PaymentInProgress)]
    assert (len(started), len(busy)) == (1, 19), results


@override_settings(DEPOSIT_CARD_MAX_DOLLARS=200, DAILY_DEPOSIT_LIMIT_DOLLARS=200)
def test_two_families_starting_at_once_cannot_both_take_the_last_of_the_day():
    account = make_account("+12025000013", "100013", 0)
    # One deposit at a time per member: the first started holds the slot, the others hear "in progress".
    results = all_at_once(
        [
            lambda n=n: charges.card_deposit_start(
                account=Account.objects.get(pk=account.pk),
                amount_cents=150_00,
                call_sid=f"CA{n}",
                line=charges.deposit_line(f"+1202555030{n}"),
                vouched=True,
            )
            for n in range(4)
        ]
    )
    started = [r for r in results if isinstance(r, CardDeposit)]
    assert len(started) == 1 and all(
        isinstance(r, (errors.PaymentInProgress, errors.AmountRefused)) for r in results if r not in started
    ), results


# A PostgreSQL review: a line's lookups, and version 3's late result against reconcile --credit -------------


@override_settings(DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY=3)
def test_parallel_member_id_lookups_from_one_line_never_pass_its_limit(monkeypatch):
    """Two failed lookups today, one left: six calls from the line enter unknown IDs at once. One is answered,
    five refused; before, each counted before any wrote its attempt, and all six were answered."""
    DepositAttempt.objects.create(line=LINE)
    DepositAttempt.objects.create(line=LINE)
    real = limits.lookup_refusal

    def slow_refusal(**kwargs):
        refusal = real(**kwargs)
        time.sleep(0.3)  # every call has counted before any writes its attempt, unless the line's lock orders them
        return refusal

    monkeypatch.setattr(limits, "lookup_refusal", slow_refusal)
    results = all_at_once(
        [lambda n=n: charges.member_lookup(member_id=f"99999{n}", line=LINE, vouched=True) for n in range(6)]
    )
    answered = [r for r in results if isinstance(r, errors.CannotReceiveDeposits)]
    refused = [r for r in results if isinstance(r, errors.TooManyAttempts)]
    assert (len(answered), len(refused)) == (1, 5), results
    assert DepositAttempt.objects.filter(line=LINE).count() == 3


def test_a_late_version_3_result_and_reconcile_credit_never_deadlock(monkeypatch):
    """The late action request of a call begun before version 4 credits its connector's charge while an
    operator's reconcile --credit credits the same deposit: both take the member's lock, then the deposit's."""
    account = make_account("+12025000022", "100022", 0)
    deposit = charges.card_deposit_start(account=account, amount_cents=25_00, call_sid="CAV3", line=LINE, vouched=True)
    CardDeposit.objects.filter(pk=deposit.pk).update(charged_by=ChargedBy.CONNECTOR)
    real = charges._connector_result

    def slow_connector_result(*args, **kwargs):
        time.sleep(0.6)  # holding the locks _token_received took
        return real(*args, **kwargs)

    monkeypatch.setattr(charges, "_connector_result", slow_connector_result)
    paid = charges.PayResult(result="success", confirmation_code="ch_3Review", card_number="xxxx4242")

    def operator():
        time.sleep(0.2)  # the action request holds its locks by now
        return charges.connector_credit(
            deposit_id=deposit.pk, reference="ch_3Review", card_type="visa", card_last4="4242"
        )

    results = all_at_once(
        [
            lambda: charges.card_deposit_paid(
                deposit_id=deposit.pk, call_sid="CAV3", paid=paid, deadline=time.monotonic() + 13
            ),
            operator,
        ]
    )
    assert not any("deadlock" in str(result) for result in results), results
    account.refresh_from_db()
    assert account.balance_cents == 25_00 == account_selectors.ledger_balance_cents(account=account)
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CARD).count() == 1
