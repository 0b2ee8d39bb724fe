"""Card deposits: started before <Pay>, credited exactly once after it, within the limits, refunded to the card."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from accounts import codes
from accounts.confirmations import confirmation_code_verify, describe_code_check
from accounts.errors import InsufficientFunds
from accounts.models import Account, ConfirmationCode, LedgerEntry
from payments import errors, selectors, services
from payments.models import CardDeposit

pytestmark = pytest.mark.django_db

LINE = services.deposit_line("+12025550142")
CALL = "CA" + "d" * 32


def start(account: Account, cents: int = 25_00, *, call_sid: str = CALL, line: str = LINE, now=None) -> CardDeposit:
    return services.card_deposit_start(account=account, amount_cents=cents, call_sid=call_sid, line=line, now=now)


def paid(deposit: CardDeposit, reference: str = "ch_3Pq0a1", **fields) -> CardDeposit:
    return services.card_deposit_settle(
        deposit_id=deposit.pk,
        call_sid=deposit.call_sid,
        result="success",
        reference=reference,
        card_type="visa",
        card_number="xxxxxxxxxxxx4242",
        **fields,
    )


def test_a_success_credits_the_member_once_with_a_card_deposit_entry_and_a_code(account):
    deposit = paid(start(account))
    account.refresh_from_db()
    assert account.balance_cents == 125_00
    assert deposit.status == "paid" and deposit.card_last4 == "4242" and deposit.card_type == "visa"
    assert deposit.entry.kind == LedgerEntry.Kind.CARD and deposit.entry.amount_cents == 25_00
    code = services.confirmation_code(deposit)
    assert codes.is_code(code)
    check = confirmation_code_verify(code=code)
    assert check.confirmation_code.purpose == ConfirmationCode.Purpose.DEPOSIT
    assert f"card deposit of $25.00 to {account}, ledger entry {deposit.entry_id}" in describe_code_check(check)


def test_a_retried_action_request_credits_nothing_more_and_repeats_the_same_code(account):
    deposit = paid(start(account))
    again = paid(deposit)
    assert again.pk == deposit.pk and services.confirmation_code(again) == services.confirmation_code(deposit)
    account.refresh_from_db()
    assert account.balance_cents == 125_00 and LedgerEntry.objects.filter(kind="card").count() == 1


def test_the_same_reference_for_another_deposit_credits_nothing_and_is_flagged(account):
    first = paid(start(account))
    second = start(account, call_sid="CA" + "e" * 32)
    heard = paid(second)
    assert heard.pk == first.pk  # the caller hears the confirmation of the charge that was credited
    second.refresh_from_db()
    assert second.status == "failed" and f"card deposit {first.pk}" in second.needs_look
    account.refresh_from_db()
    assert account.balance_cents == 125_00


def test_a_request_naming_another_calls_deposit_is_refused(account):
    deposit = start(account)
    with pytest.raises(errors.UnknownDeposit):
        services.card_deposit_settle(
            deposit_id=deposit.pk, call_sid="CA" + "f" * 32, result="success", reference="ch_x"
        )
    deposit.refresh_from_db()
    assert deposit.status == "pending"


@pytest.mark.parametrize(
    "result",
    [
        "too-many-failed-attempts",
        "payment-connector-error",
        "caller-interrupted-with-star",
        "caller-hung-up",
        "validation-error",
        "internal-error",
        "something-new",
        "",
        None,
        "<script>",
    ],
)
def test_anything_but_success_credits_nothing(account, result):
    deposit = services.card_deposit_settle(
        deposit_id=start(account).pk, call_sid=CALL, result=result, reference="ch_should_not_matter"
    )
    assert deposit.status == "failed" and deposit.entry is None and deposit.reference is None
    assert deposit.result == (result if result and result != "<script>" else "unknown")
    account.refresh_from_db()
    assert account.balance_cents == 100_00


def test_a_success_without_a_reference_is_credited_and_flagged(account):
    deposit = paid(start(account), reference="")
    assert deposit.status == "paid" and deposit.reference == f"missing-{deposit.pk}"
    assert "no processor reference" in deposit.needs_look


@pytest.mark.parametrize("masked", ["xxxxxxxxxxxx4242", "************4242", "4242", "424242xxxxxx4242", "xxxx-4242"])
def test_only_the_last_four_of_a_masked_number_are_kept(account, masked):
    deposit = services.card_deposit_settle(
        deposit_id=start(account).pk, call_sid=CALL, result="success", reference="ch_1", card_number=masked
    )
    assert deposit.card_last4 == "4242"


def test_a_full_card_number_is_never_stored(account):
    deposit = services.card_deposit_settle(
        deposit_id=start(account).pk, call_sid=CALL, result="success", reference="ch_1", card_number="4242424242424242"
    )
    stored = " ".join(str(value) for value in CardDeposit.objects.filter(pk=deposit.pk).values().get().values())
    assert "42424242" not in stored and deposit.card_last4 == "4242"


# Limits --------------------------------------------------------------------------------------------------


@override_settings(DEPOSIT_CARD_MAX_DOLLARS=200, DAILY_DEPOSIT_LIMIT_DOLLARS=500)
def test_one_deposit_is_at_most_the_card_maximum_and_at_least_a_dollar(account):
    with pytest.raises(errors.AmountRefused) as refused:
        start(account, 201_00)
    assert refused.value.limit_cents == 200_00 and not refused.value.daily
    with pytest.raises(errors.AmountRefused):
        start(account, 50)
    assert start(account, 200_00).amount_cents == 200_00


@override_settings(DEPOSIT_CARD_MAX_DOLLARS=200, DAILY_DEPOSIT_LIMIT_DOLLARS=300, DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY=50)
def test_the_daily_limit_counts_paid_and_undecided_deposits(account):
    paid(start(account, 200_00), reference="ch_a")
    pending = start(account, 60_00)
    with pytest.raises(errors.AmountRefused) as refused:
        start(account, 50_00)
    assert refused.value.limit_cents == 40_00 and refused.value.daily
    # A deposit whose <Pay> never reported back may have been charged: it holds its amount until
    # decided, however long that takes, so a family is never invited to pay it twice.
    later = timezone.now() + selectors.PENDING_HOLD + timedelta(minutes=1)
    assert selectors.deposit_room_cents(account=account, now=later) == 40_00
    assert pending in selectors.needing_a_look(now=later)
    services.card_deposit_settle(deposit_id=pending.pk, call_sid=CALL, result="caller-hung-up", reference=None)
    assert selectors.deposit_room_cents(account=account, now=later) == 100_00


@override_settings(DEPOSIT_CARD_MAX_DOLLARS=200, DAILY_DEPOSIT_LIMIT_DOLLARS=200, DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY=50)
def test_a_success_the_limits_would_now_refuse_is_credited_and_flagged(account):
    # Two families started at once; both were charged. The second is credited all the same, and flagged.
    first = start(account, 150_00, call_sid="CA1")
    CardDeposit.objects.filter(pk=first.pk).update(status="failed")  # as the limit saw it then
    second = start(account, 150_00, call_sid="CA2")
    CardDeposit.objects.filter(pk=first.pk).update(status="pending")
    paid(first, reference="ch_first")
    late = paid(second, reference="ch_second")
    assert late.status == "paid" and "past a limit" in late.needs_look
    account.refresh_from_db()
    assert account.balance_cents == 400_00


@override_settings(DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY=2, DEPOSIT_ATTEMPTS_PER_HOUR=200)
def test_a_line_gets_a_few_failed_tries_a_day_and_right_ones_count_nothing(account):
    for _ in range(5):  # a family who enters the right ID is never held back
        assert services.member_lookup(member_id=account.member_id, line=LINE, trusted=True) == account
    with pytest.raises(errors.CannotReceiveDeposits):
        services.member_lookup(member_id="999999", line=LINE, trusted=True)
    failed = start(account)
    services.card_deposit_settle(deposit_id=failed.pk, call_sid=CALL, result="payment-connector-error", reference=None)
    with pytest.raises(errors.TooManyAttempts) as refused:
        services.member_lookup(member_id=account.member_id, line=LINE, trusted=True)
    assert refused.value.scope == "line"
    with pytest.raises(errors.TooManyAttempts):
        start(account)
    # Another line is not held back by this one.
    other = services.deposit_line("+12025550143")
    assert services.member_lookup(member_id=account.member_id, line=other, trusted=True) == account


@override_settings(DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY=2, DEPOSIT_ATTEMPTS_PER_HOUR=200)
def test_withheld_numbers_are_not_held_to_a_line_limit_one_prankster_would_use_up(account):
    for _ in range(4):
        with pytest.raises(errors.CannotReceiveDeposits):
            services.member_lookup(member_id="999999", line=services.WITHHELD_LINE, trusted=False)
    assert services.member_lookup(member_id=account.member_id, line=services.WITHHELD_LINE, trusted=False) == account


def test_withheld_numbers_share_one_line():
    assert services.deposit_line("") == services.deposit_line("") == services.WITHHELD_LINE
    assert services.deposit_line("+12025550142") != services.deposit_line("+12025550143")
    assert "2025550142" not in services.deposit_line("+12025550142")


@override_settings(DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY=50, DEPOSIT_ATTEMPTS_PER_HOUR=3)
def test_a_flood_of_failed_tries_stops_unattested_callers_but_never_a_vouched_for_number(account):
    for number in range(3):  # spoofed numbers, each trying an ID that does not exist
        with pytest.raises(errors.CannotReceiveDeposits):
            services.member_lookup(
                member_id="999999", line=services.deposit_line(f"+1202555015{number}"), trusted=False
            )
    with pytest.raises(errors.TooManyAttempts) as refused:
        services.member_lookup(member_id=account.member_id, line=services.deposit_line("+12025550159"), trusted=False)
    assert refused.value.scope == "service"
    # A family on a mobile whose carrier vouches for the number (attestation A) still gets through.
    family = services.deposit_line("+12025550158")
    assert services.member_lookup(member_id=account.member_id, line=family, trusted=True) == account


@override_settings(DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY=50, DEPOSIT_ATTEMPTS_PER_HOUR=500)
def test_card_testing_against_one_member_stops_at_that_member(account):
    for number in range(selectors.FAILED_PAYMENTS_PER_MEMBER_PER_DAY):
        declined = start(account, call_sid=f"CA{number}", line=services.deposit_line(f"+120255502{number:02d}"))
        services.card_deposit_settle(
            deposit_id=declined.pk, call_sid=declined.call_sid, result="payment-connector-error", reference=None
        )
    with pytest.raises(errors.AmountRefused) as refused:
        start(account, call_sid="CAnext", line=services.deposit_line("+12025550299"))
    assert refused.value.limit_cents == 0


def test_only_active_accounts_receive_deposits_and_a_lock_does_not_matter(account):
    assert selectors.member_for_deposit(member_id=account.member_id) == account
    Account.objects.filter(pk=account.pk).update(locked_until=timezone.now() + timedelta(hours=1))
    assert selectors.member_for_deposit(member_id=account.member_id) == account
    Account.objects.filter(pk=account.pk).update(status=Account.Status.PENDING, verified_at=None)
    assert selectors.member_for_deposit(member_id=account.member_id) is None
    assert selectors.member_for_deposit(member_id="999999") is None


# The database holds the rules too -------------------------------------------------------------------------


def test_a_paid_deposit_without_its_entry_cannot_be_written(account):
    from django.db import IntegrityError, transaction

    deposit = start(account)
    with pytest.raises(IntegrityError), transaction.atomic():
        CardDeposit.objects.filter(pk=deposit.pk).update(status="paid", reference="ch_z")


def test_one_reference_credits_one_deposit_in_the_database(account):
    from django.db import IntegrityError, transaction

    first = paid(start(account), reference="ch_once")
    other = start(account, call_sid="CA9")
    with pytest.raises(IntegrityError), transaction.atomic():
        CardDeposit.objects.filter(pk=other.pk).update(reference=first.reference)


# Refunds (Stripe answered at the HTTP layer) -------------------------------------------------------------


@pytest.fixture
def stripe_api(settings):
    import responses

    settings.STRIPE_SECRET_KEY = "sk_test_123"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield mocked


# Shaped like the Refund object in Stripe's API reference (https://docs.stripe.com/api/refunds/object).
def refund_body(reference: str) -> dict:
    return {
        "id": "re_3Pq0a1",
        "object": "refund",
        "amount": 2500,
        "charge": reference if reference.startswith("ch_") else "ch_3Pq0a1",
        "currency": "usd",
        "payment_intent": reference if reference.startswith("pi_") else None,
        "status": "succeeded",
    }


@pytest.mark.parametrize("reference, field", [("ch_3Pq0a1", "charge"), ("pi_3Pq0a1", "payment_intent")])
def test_a_refund_goes_to_stripe_with_an_idempotency_key_then_writes_the_refund_entry(
    account, stripe_api, reference, field
):
    deposit = paid(start(account), reference=reference)
    stripe_api.post("https://api.stripe.com/v1/refunds", json=refund_body(reference))
    refunded = services.card_deposit_refund(entry_id=deposit.entry_id)
    sent = stripe_api.calls[0].request
    assert f"{field}={reference}" in sent.body
    assert sent.headers["Idempotency-Key"] == f"myibot-card-deposit-{deposit.pk}"
    assert refunded.status == "refunded" and refunded.refund_reference == "re_3Pq0a1"
    account.refresh_from_db()
    assert account.balance_cents == 100_00
    assert LedgerEntry.objects.get(kind="refund").corrects_id == deposit.entry_id
    with pytest.raises(errors.AlreadyRefunded):
        services.card_deposit_refund(entry_id=deposit.entry_id)


def test_a_refund_is_refused_when_the_money_was_spent_and_stripe_is_never_asked(account, stripe_api):
    deposit = paid(start(account))
    Account.objects.filter(pk=account.pk).update(balance_cents=10_00)
    with pytest.raises(InsufficientFunds):
        services.card_deposit_refund(entry_id=deposit.entry_id)
    assert len(stripe_api.calls) == 0


def test_when_stripe_refuses_the_money_stays_off_the_account_and_a_second_run_asks_stripe_again(account, stripe_api):
    deposit = paid(start(account))
    stripe_api.post(
        "https://api.stripe.com/v1/refunds",
        status=402,
        json={"error": {"type": "invalid_request_error", "message": "Your balance is insufficient."}},
    )
    with pytest.raises(errors.StripeFailed, match="insufficient"):
        services.card_deposit_refund(entry_id=deposit.entry_id)
    deposit.refresh_from_db()
    account.refresh_from_db()
    # Taken off first, in its own transaction: nothing stays locked while Stripe is asked, and the
    # member cannot spend what is being refunded.
    assert (
        deposit.status == "refunded"
        and not deposit.refund_reference
        and "run refund_card_deposit" in deposit.needs_look
    )
    assert account.balance_cents == 100_00 and LedgerEntry.objects.filter(kind="refund").count() == 1
    stripe_api.replace("POST", "https://api.stripe.com/v1/refunds", json=refund_body("ch_3Pq0a1"))
    again = services.card_deposit_refund(entry_id=deposit.entry_id)
    assert again.refund_reference == "re_3Pq0a1" and again.needs_look == ""
    assert LedgerEntry.objects.filter(kind="refund").count() == 1
    with pytest.raises(errors.AlreadyRefunded):
        services.card_deposit_refund(entry_id=deposit.entry_id)


def test_a_charge_stripe_already_refunded_is_finished_on_our_side(account, stripe_api):
    deposit = paid(start(account))
    stripe_api.post(
        "https://api.stripe.com/v1/refunds",
        status=400,
        json={
            "error": {
                "type": "invalid_request_error",
                "code": "charge_already_refunded",
                "message": "Charge ch_3Pq0a1 has already been refunded.",
            }
        },
    )
    refunded = services.card_deposit_refund(entry_id=deposit.entry_id)
    assert refunded.status == "refunded" and "already refunded" in refunded.refund_reference


def test_nothing_in_the_database_or_the_log_holds_a_card_number(account, caplog):
    caplog.set_level("DEBUG")
    paid(start(account))
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM payments_carddeposit")
        rows = " ".join(str(cell) for row in cursor.fetchall() for cell in row)
    assert "xxxxxxxxxxxx4242" not in rows and "xxxxxxxxxxxx4242" not in caplog.text


def test_the_web_workers_never_load_stripes_library():
    """Only the operators' commands talk to Stripe: its library (some 30 MB) stays out of every gunicorn worker."""
    import subprocess
    import sys

    probe = (
        "import sys, django; django.setup(); from django.urls import resolve; import myibot.wsgi; "
        "resolve('/twilio/deposit/paid'); import payments.admin, payments.services; "
        "print('stripe' in sys.modules)"
    )
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"}
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert found.stdout.strip() == "False", found.stderr
