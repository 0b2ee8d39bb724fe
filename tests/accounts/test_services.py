from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from accounts import codes, errors, identity, ledger, selectors
from accounts.models import Account, ConfirmationCode, LedgerEntry, Recipient, Transfer

pytestmark = pytest.mark.django_db


def submit(account, amount_cents=2500, key="CA1:5", code="246810"):
    return ledger.transfer_submit(account=account, recipient_code=code, amount_cents=amount_cents, idempotency_key=key)


class TestDeposit:
    def test_it_credits_the_account_as_a_ledger_entry(self, account):
        entry = ledger.deposit(account=account, amount_cents=1250)
        assert (entry.kind, entry.amount_cents, entry.transfer) == ("deposit", 1250, None)
        assert account.balance_cents == 11250
        assert Account.objects.get(pk=account.pk).balance_cents == 11250

    @pytest.mark.parametrize("cents", [0, -100])
    def test_it_refuses_amounts_that_are_not_positive(self, account, cents):
        with pytest.raises(errors.InvalidAmount):
            ledger.deposit(account=account, amount_cents=cents)
        assert LedgerEntry.objects.count() == 1

    @pytest.mark.django_db(transaction=True)
    def test_a_failure_after_the_ledger_entry_leaves_nothing_committed(self, account, monkeypatch):
        # One transaction, on SQLite as on PostgreSQL: the entry and the balance go together or not at all.
        real_update = Account.objects.filter

        def stop_at_the_balance(*args, **kwargs):
            if LedgerEntry.objects.count() == 2:
                raise RuntimeError("the machine was stopped")
            return real_update(*args, **kwargs)

        monkeypatch.setattr(Account.objects, "filter", stop_at_the_balance)
        with pytest.raises(RuntimeError):
            ledger.deposit(account=account, amount_cents=1250)
        monkeypatch.undo()
        assert LedgerEntry.objects.count() == 1
        assert Account.objects.get(pk=account.pk).balance_cents == 100_00


class TestTransferSubmit:
    def test_it_debits_and_records_a_submitted_transfer_with_a_code(self, account, recipient):
        receipt = submit(account)
        transfer = receipt.transfer
        assert (transfer.status, transfer.amount_cents, transfer.recipient) == ("submitted", 2500, recipient)
        assert codes.is_code(receipt.code)
        stored = ConfirmationCode.objects.get(transfer=transfer)
        assert (stored.purpose, stored.code_hash) == ("transfer", codes.code_digest(receipt.code))
        assert stored.expires - stored.created == timedelta(days=30)
        account.refresh_from_db()
        assert account.balance_cents == 7500 == selectors.ledger_balance_cents(account=account)

    def test_the_same_key_returns_the_first_transfer_and_writes_nothing(self, account, recipient):
        first = submit(account)
        again = submit(account)
        assert again.transfer == first.transfer
        assert again.code is None
        assert Transfer.objects.count() == 1
        assert ConfirmationCode.objects.filter(purpose="transfer").count() == 1
        account.refresh_from_db()
        assert account.balance_cents == 7500

    def test_the_same_key_for_another_transfer_is_a_conflict(self, account, recipient):
        submit(account)
        with pytest.raises(errors.IdempotencyConflict):
            submit(account, amount_cents=3000)

    def test_it_refuses_more_than_the_balance(self, account, recipient):
        with pytest.raises(errors.InsufficientFunds):
            submit(account, amount_cents=10001)
        assert not Transfer.objects.exists()

    def test_it_allows_exactly_the_balance(self, account, recipient):
        submit(account, amount_cents=10000)
        account.refresh_from_db()
        assert account.balance_cents == 0

    def test_it_refuses_more_than_the_limit(self, account, recipient, settings):
        settings.TRANSFER_LIMIT_DOLLARS = 50
        with pytest.raises(errors.TransferLimitExceeded) as refusal:
            submit(account, amount_cents=5001)
        assert refusal.value.limit_cents == 5000

    @pytest.mark.parametrize("cents", [0, -1])
    def test_it_refuses_amounts_that_are_not_positive(self, account, recipient, cents):
        with pytest.raises(errors.InvalidAmount):
            submit(account, amount_cents=cents)

    @pytest.mark.parametrize("code", ["999999", "135790"])
    def test_it_refuses_unknown_and_inactive_recipients(self, account, recipient, code):
        Recipient.objects.create(code="135790", name="Gone", active=False)
        with pytest.raises(errors.UnknownRecipient):
            submit(account, code=code)

    def test_a_failure_between_the_writes_leaves_nothing_behind(self, account, recipient, monkeypatch):
        def broken(**kwargs):
            raise RuntimeError("the disk is full")

        monkeypatch.setattr(LedgerEntry.objects, "create", broken)
        with pytest.raises(RuntimeError):
            submit(account)
        assert not Transfer.objects.exists()
        account.refresh_from_db()
        assert account.balance_cents == 10000


class TestTransferDecisions:
    def test_settling_moves_no_money(self, account, recipient):
        transfer = ledger.transfer_settle(transfer=submit(account).transfer)
        assert transfer.status == "settled"
        assert transfer.decided is not None
        account.refresh_from_db()
        assert account.balance_cents == 7500
        assert LedgerEntry.objects.filter(kind="reversal").count() == 0

    def test_rejecting_writes_a_reversing_entry(self, account, recipient):
        transfer = ledger.transfer_reject(transfer=submit(account).transfer)
        assert transfer.status == "rejected"
        reversal = LedgerEntry.objects.get(kind="reversal")
        assert (reversal.amount_cents, reversal.transfer) == (2500, transfer)
        account.refresh_from_db()
        assert account.balance_cents == 10000 == selectors.ledger_balance_cents(account=account)

    @pytest.mark.parametrize(
        "first, second", [("settle", "reject"), ("reject", "reject"), ("reject", "settle"), ("settle", "settle")]
    )
    def test_a_decided_transfer_cannot_be_decided_again(self, account, recipient, first, second):
        transfer = submit(account).transfer
        getattr(ledger, f"transfer_{first}")(transfer=transfer)
        with pytest.raises(errors.TransferAlreadyDecided):
            getattr(ledger, f"transfer_{second}")(transfer=transfer)
        assert LedgerEntry.objects.filter(kind="reversal").count() == (1 if first == "reject" else 0)


class TestDatabaseConstraints:
    def test_a_balance_can_never_go_below_zero(self, account):
        with pytest.raises(IntegrityError), transaction.atomic():
            Account.objects.filter(pk=account.pk).update(balance_cents=-1)

    def test_a_transfer_amount_must_be_positive(self, account, recipient):
        with pytest.raises(IntegrityError), transaction.atomic():
            Transfer.objects.create(account=account, recipient=recipient, amount_cents=0, idempotency_key="k")

    def test_a_transfer_status_must_be_known(self, account, recipient):
        with pytest.raises(IntegrityError), transaction.atomic():
            Transfer.objects.create(
                account=account, recipient=recipient, amount_cents=1, idempotency_key="k", status="lost"
            )

    def test_an_idempotency_key_is_unique(self, account, recipient):
        Transfer.objects.create(account=account, recipient=recipient, amount_cents=1, idempotency_key="k")
        with pytest.raises(IntegrityError), transaction.atomic():
            Transfer.objects.create(account=account, recipient=recipient, amount_cents=1, idempotency_key="k")

    @pytest.mark.parametrize("kind, cents", [("deposit", -5), ("transfer", 5), ("reversal", -5), ("bonus", 5)])
    def test_a_ledger_entry_has_the_shape_of_its_kind(self, account, kind, cents):
        with pytest.raises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.create(account=account, amount_cents=cents, kind=kind)

    def test_a_transfer_is_reversed_at_most_once(self, account, recipient):
        transfer = ledger.transfer_reject(transfer=submit(account).transfer)
        with pytest.raises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.create(account=account, amount_cents=2500, kind="reversal", transfer=transfer)

    def test_ledger_entries_are_append_only(self, account):
        entry = LedgerEntry.objects.get()
        entry.amount_cents = 1_000_000
        with pytest.raises(TypeError):
            entry.save()

    @pytest.mark.parametrize("code", ["", "EN", "e", "eng", "e1", "en-US"])
    def test_an_accounts_language_has_the_shape_of_a_code(self, account, code):
        with pytest.raises(IntegrityError), transaction.atomic():
            Account.objects.filter(pk=account.pk).update(language=code)


class TestLanguage:
    """The database checks a language code's shape; the registry (myibot/languages.py) which codes exist."""

    def test_any_code_of_the_right_shape_is_stored_and_only_registered_ones_are_clean(self, account):
        Account.objects.filter(pk=account.pk).update(language="fr")  # no migration for a new language
        account.refresh_from_db()
        with pytest.raises(ValidationError, match="'fr' is not a registered language \\(en, es\\)"):
            account.full_clean()

    def test_a_registered_third_language_is_clean(self, account, french):
        account.language = "fr"
        account.full_clean()
        account.save()

    def test_the_services_keep_only_registered_languages(self, account):
        with pytest.raises(errors.UnknownLanguage):
            identity.account_register(member_id="654321", pin_hash="x", language="fr")
        with pytest.raises(errors.UnknownLanguage):
            identity.account_remember_language(account=account, language="fr")
        assert not Account.objects.filter(member_id="654321").exists()
        account.refresh_from_db()
        assert account.language == "en"

    def test_the_services_keep_a_registered_third_language(self, account, french):
        identity.account_remember_language(account=account, language="fr")
        identity.account_register(member_id="654321", pin_hash="x", language="fr")
        assert set(Account.objects.values_list("language", flat=True)) == {"fr"}


class TestLedgerInvariant(HypothesisTestCase):
    """Whatever happens, an account's balance is the sum of its ledger entries and never negative."""

    @hypothesis_settings(max_examples=30, deadline=None)
    @given(
        st.lists(
            st.tuples(st.sampled_from(["deposit", "transfer", "reject", "settle"]), st.integers(1, 60_000)), max_size=25
        ),
        st.randoms(use_true_random=False),
    )
    def test_the_balance_is_always_the_sum_of_the_ledger(self, operations, rng: random.Random):
        account = Account.objects.create(member_id="222222", pin_hash="x", status="active", verified_at=timezone.now())
        Recipient.objects.get_or_create(code="246810", defaults={"name": "Jane Doe"})
        for number, (operation, cents) in enumerate(operations):
            open_transfers = list(Transfer.objects.filter(account=account, status="submitted"))
            try:
                if operation == "deposit":
                    ledger.deposit(account=account, amount_cents=cents)
                elif operation == "transfer":
                    submit(account, amount_cents=cents, key=f"invariant:{number}")
                elif open_transfers:
                    decide = ledger.transfer_reject if operation == "reject" else ledger.transfer_settle
                    decide(transfer=rng.choice(open_transfers))
            except (errors.InsufficientFunds, errors.TransferLimitExceeded):
                pass
            account.refresh_from_db()
            assert account.balance_cents == selectors.ledger_balance_cents(account=account)
            assert account.balance_cents >= 0


class TestDepositReverse:
    def test_it_takes_a_deposit_back_with_a_correction_pointing_at_it(self, account):
        extra = ledger.deposit(account=account, amount_cents=5000)
        correction = ledger.deposit_reverse(entry=extra)
        assert (correction.kind, correction.amount_cents, correction.corrects) == ("correction", -5000, extra)
        account.refresh_from_db()
        assert account.balance_cents == 10000 == selectors.ledger_balance_cents(account=account)

    def test_it_reverses_a_deposit_once(self, account):
        extra = ledger.deposit(account=account, amount_cents=5000)
        ledger.deposit_reverse(entry=extra)
        with pytest.raises(errors.AlreadyCorrected):
            ledger.deposit_reverse(entry=extra)

    def test_it_refuses_when_the_money_was_spent(self, account, recipient):
        deposit_entry = LedgerEntry.objects.get(kind="deposit")
        submit(account, amount_cents=5000)
        with pytest.raises(errors.InsufficientFunds):
            ledger.deposit_reverse(entry=deposit_entry)
        assert not LedgerEntry.objects.filter(kind="correction").exists()

    def test_it_refuses_what_is_not_a_deposit(self, account, recipient):
        submit(account)
        with pytest.raises(errors.NotADeposit):
            ledger.deposit_reverse(entry=LedgerEntry.objects.get(kind="transfer"))

    def test_the_database_allows_one_correction_per_deposit(self, account):
        extra = ledger.deposit(account=account, amount_cents=5000)
        LedgerEntry.objects.create(account=account, amount_cents=-5000, kind="correction", corrects=extra)
        with pytest.raises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.create(account=account, amount_cents=-5000, kind="correction", corrects=extra)
        with pytest.raises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.create(account=account, amount_cents=5000, kind="correction", corrects=extra)
