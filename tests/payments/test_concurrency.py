"""Card deposits under real concurrency: threads, transactions and row locks on PostgreSQL."""

from __future__ import annotations

import pytest
from django.test import override_settings

from accounts import selectors as account_selectors
from accounts.models import Account, LedgerEntry
from payments import errors, services
from payments.models import CardDeposit
from tests.accounts.test_concurrency import all_at_once, make_account
from tests.conftest import postgres_only

pytestmark = [postgres_only("row locks between real threads"), pytest.mark.django_db(transaction=True)]

LINE = services.deposit_line("+12025550142")


def settle(deposit: CardDeposit, reference: str):
    return lambda: services.card_deposit_settle(
        deposit_id=deposit.pk, call_sid=deposit.call_sid, result="success", reference=reference, card_number="4242"
    )


def test_two_workers_answering_the_same_action_request_credit_once():
    account = make_account("+12025000011", "100011", 0)
    deposit = services.card_deposit_start(account=account, amount_cents=25_00, call_sid="CA1", line=LINE)
    results = all_at_once([settle(deposit, "ch_same") for _ in range(6)])
    assert all(isinstance(result, CardDeposit) and result.pk == deposit.pk for result in results), results
    account.refresh_from_db()
    assert account.balance_cents == 25_00 == account_selectors.ledger_balance_cents(account=account)
    assert LedgerEntry.objects.filter(kind="card").count() == 1


def test_one_reference_reported_for_two_deposits_at_once_credits_one():
    account = make_account("+12025000012", "100012", 0)
    first = services.card_deposit_start(account=account, amount_cents=25_00, call_sid="CA1", line=LINE)
    second = services.card_deposit_start(account=account, amount_cents=25_00, call_sid="CA2", line=LINE)
    results = all_at_once([settle(first, "ch_shared"), settle(second, "ch_shared")])
    assert not [result for result in results if isinstance(result, Exception)], results
    account.refresh_from_db()
    assert account.balance_cents == 25_00
    assert sorted(CardDeposit.objects.values_list("status", flat=True)) == ["failed", "paid"]


@override_settings(DEPOSIT_CARD_MAX_DOLLARS=200, DAILY_DEPOSIT_LIMIT_DOLLARS=200, DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY=50)
def test_two_families_starting_at_once_cannot_both_take_the_last_of_the_day():
    account = make_account("+12025000013", "100013", 0)

    def start(number: int):
        return lambda: services.card_deposit_start(
            account=Account.objects.get(pk=account.pk), amount_cents=150_00, call_sid=f"CA{number}", line=LINE
        )

    results = all_at_once([start(n) for n in range(4)])
    started = [r for r in results if isinstance(r, CardDeposit)]
    refused = [r for r in results if isinstance(r, errors.AmountRefused)]
    assert (len(started), len(refused)) == (1, 3), results
