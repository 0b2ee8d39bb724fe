from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts import codes, confirmations, errors, ledger
from accounts.models import ConfirmationCode

pytestmark = pytest.mark.django_db


def issue_registration_code(account) -> str:
    return confirmations.confirmation_code_issue(account=account, purpose="registration", now=timezone.now())


def test_codes_are_six_digits_from_secrets():
    drawn = {codes.new_code() for _ in range(200)}
    assert all(codes.is_code(code) for code in drawn)
    assert len(drawn) > 190


def test_a_code_is_stored_only_as_its_keyed_hash(account):
    code = issue_registration_code(account)
    stored = ConfirmationCode.objects.get()
    assert stored.code_hash == codes.code_digest(code)
    assert code not in stored.code_hash
    assert len(stored.code_hash) == 64


def test_the_keyed_hash_depends_on_the_pepper(settings):
    before = codes.code_digest("471092")
    settings.PIN_PEPPER = "another-pepper"
    assert codes.code_digest("471092") != before


def test_a_sealed_code_unseals_only_in_its_call():
    sealed = codes.seal_code("471092", context="CA1")
    assert "471092" not in sealed
    assert codes.unseal_code(sealed, context="CA1") == "471092"
    assert codes.unseal_code(sealed, context="CA2") != "471092"


def test_a_sealed_code_needs_the_pepper(settings):
    sealed = codes.seal_code("471092", context="CA1")
    settings.PIN_PEPPER = "another-pepper"
    assert codes.unseal_code(sealed, context="CA1") != "471092"


def test_verifying_a_code_marks_it_once(account):
    code = issue_registration_code(account)
    first = confirmations.confirmation_code_verify(code=code)
    assert (first.already_verified, first.expired) == (False, False)
    assert ConfirmationCode.objects.get().verified_at is not None
    second = confirmations.confirmation_code_verify(code=code)
    assert second.already_verified


def test_an_expired_code_is_not_verified(account, settings):
    code = issue_registration_code(account)
    later = timezone.now() + timedelta(days=settings.CONFIRMATION_CODE_TTL_DAYS, seconds=1)
    check = confirmations.confirmation_code_verify(code=code, now=later)
    assert check.expired
    assert ConfirmationCode.objects.get().verified_at is None


def test_the_expiry_is_a_setting(account, settings):
    settings.CONFIRMATION_CODE_TTL_DAYS = 2
    issue_registration_code(account)
    stored = ConfirmationCode.objects.get()
    assert stored.expires - stored.created == timedelta(days=2)


def test_an_unknown_code(db):
    with pytest.raises(errors.UnknownCode):
        confirmations.confirmation_code_verify(code="000000")


def test_verify_code_prints_what_a_registration_code_confirms(account, capsys):
    code = issue_registration_code(account)
    call_command("verify_code", code)
    out = capsys.readouterr().out
    assert f"registration of {account}" in out
    assert "verified now" in out
    call_command("verify_code", code)
    assert "already verified on" in capsys.readouterr().out


def test_verify_code_prints_what_a_transfer_code_confirms(account, recipient, capsys):
    receipt = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="k"
    )
    call_command("verify_code", receipt.code)
    out = capsys.readouterr().out
    assert f"transfer {receipt.transfer.pk} of $25.00 to {recipient}" in out
    assert "submitted" in out


def test_verify_code_says_when_a_code_expired(account, capsys):
    code = issue_registration_code(account)
    ConfirmationCode.objects.update(expires=timezone.now() - timedelta(seconds=1))
    call_command("verify_code", code)
    assert "EXPIRED" in capsys.readouterr().out


@pytest.mark.parametrize(
    "code, message", [("000000", "unknown code"), ("12345", "exactly 6 digits"), ("abcdef", "exactly 6 digits")]
)
def test_verify_code_refuses_unknown_and_malformed_codes(db, code, message):
    with pytest.raises(CommandError, match=message):
        call_command("verify_code", code)


def test_a_new_code_avoids_one_still_valid(account, monkeypatch):
    drawn = iter(["111111", "111111", "222222"])
    monkeypatch.setattr(codes, "new_code", lambda: next(drawn))
    assert issue_registration_code(account) == "111111"
    assert issue_registration_code(account) == "222222"
