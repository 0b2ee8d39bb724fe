"""Card deposits charged by the service: once, with words that are true, settled read-only when Stripe is unclear.

Stripe is the real `stripe` library answered at the HTTP layer (tests/stripe_double.py), as strict as Stripe:
idempotency keys replay their first answer (500s included), answers get lost after the charge was made.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from accounts import codes
from accounts.confirmations import confirmation_code_verify
from accounts.models import Account, ConfirmationCode, LedgerEntry
from payments import charges, errors, limits
from payments.models import CardDeposit, StripeEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_double")]

LINE = charges.deposit_line("+12025550142")
CALL = "CA" + "d" * 32


def start(account: Account, cents: int = 25_00, *, call_sid: str = CALL, line: str = LINE, vouched=True, now=None):
    return charges.card_deposit_start(
        account=account, amount_cents=cents, call_sid=call_sid, line=line, vouched=vouched, now=now
    )


def pay(deposit: CardDeposit, token: str = "pm_card_visa", *, result: str = "success", seconds: float = 13):
    paid = charges.PayResult(result=result, token=token, card_type="visa", card_number="xxxxxxxxxxxx4242")
    return charges.card_deposit_paid(
        deposit_id=deposit.pk, call_sid=deposit.call_sid, paid=paid, deadline=time.monotonic() + seconds
    )


def balance(account: Account) -> int:
    account.refresh_from_db()
    return account.balance_cents


def test_a_token_is_charged_once_and_credited_with_a_code(account, stripe_double):
    deposit = pay(start(account))
    assert deposit.status == "paid" and balance(account) == 125_00
    assert deposit.entry.kind == LedgerEntry.Kind.CARD and deposit.card_fingerprint == "fp42424242"
    asked = stripe_double.charge_requests[0]
    assert asked["amount"] == "2500" and asked["confirm"] == "true" and asked["error_on_requires_action"] == "true"
    assert asked["metadata[public_id]"] == str(deposit.public_id) and asked["metadata[deposit]"] == str(deposit.pk)
    assert "payment_method_options[card][moto]" not in asked
    code = charges.confirmation_code(deposit)
    assert confirmation_code_verify(code=code).confirmation_code.purpose == ConfirmationCode.Purpose.DEPOSIT
    assert deposit.release_at > timezone.now() + timedelta(hours=72)


def test_moto_only_when_stripe_has_enabled_it(account, stripe_double, settings):
    settings.STRIPE_MOTO = True
    pay(start(account))
    assert stripe_double.charge_requests[0]["payment_method_options[card][moto]"] == "true"


def test_a_repeated_action_request_charges_nothing_more(account, stripe_double):
    deposit = start(account)
    first = pay(deposit)
    again = pay(deposit)
    assert again.pk == first.pk and again.status == "paid"
    assert len(stripe_double.charge_requests) == 1 and balance(account) == 125_00


@pytest.mark.parametrize(
    "token, reason, code",
    [
        ("pm_card_visa_chargeDeclined", "issuer_decline", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "issuer_decline", "insufficient_funds"),
        ("pm_card_authenticationRequiredOnSetup", "card_error", "authentication_required"),
    ],
)
def test_a_card_error_is_not_charged_with_its_reason(account, token, reason, code):
    deposit = pay(start(account), token)
    assert deposit.status == "not_charged" and deposit.not_charged_reason == reason and deposit.decline_code == code
    assert balance(account) == 100_00 and deposit.entry is None


def test_a_lost_answer_is_retried_once_with_the_same_key_and_finds_the_charge(account, stripe_double):
    stripe_double.lose_next(1, "timeout")
    deposit = pay(start(account))
    assert deposit.status == "paid" and len(stripe_double.intents) == 1
    assert len({request["metadata[public_id]"] for request in stripe_double.charge_requests}) == 1


def test_two_lost_answers_leave_it_uncertain_then_the_listing_credits_it_once(account, stripe_double):
    stripe_double.lose_next(2, "timeout")
    deposit = pay(start(account))
    assert deposit.status == "uncertain" and balance(account) == 100_00
    later = timezone.now() + timedelta(minutes=5)
    settled = charges.settle_open_deposits(now=later)
    assert [each.pk for each in settled.credited] == [deposit.pk]
    charges.settle_open_deposits(now=later)  # again: nothing more
    assert balance(account) == 125_00 and len(stripe_double.intents) == 1
    assert len(stripe_double.charge_requests) == 2, "reconciliation never creates a charge"


def test_a_saved_500_is_replayed_then_the_payment_intent_is_found_by_listing(account, stripe_double):
    stripe_double.lose_next(1, "500")
    deposit = pay(start(account))
    # The retry got the saved 500 again, as Stripe's idempotency keeps it.
    assert deposit.status == "uncertain" and len(stripe_double.charge_requests) == 2
    settled = charges.settle_open_deposits(now=timezone.now() + timedelta(minutes=5))
    # Stripe failed after it charged: only its listing shows the charge, and it is credited once.
    assert [each.pk for each in settled.credited] == [deposit.pk] and balance(account) == 125_00


def test_idempotency_key_in_use_is_uncertain(account, stripe_double):
    stripe_double.lose_next(2, "409")
    deposit = pay(start(account))
    assert deposit.status == "uncertain"


def test_stripe_down_is_uncertain_holds_the_room_and_closes_as_not_charged_an_hour_later(account, stripe_double):
    deposit = start(account, 200_00)
    stripe_double.lose_next(2, "refused")
    deposit = pay(deposit)
    assert deposit.status == "uncertain"
    # It keeps holding the member's day: a family cannot be invited to pay twice.
    with override_settings(DAILY_DEPOSIT_LIMIT_DOLLARS=300):
        assert limits.room_cents(account=account, now=timezone.now()) == 100_00
    assert charges.settle_open_deposits(now=timezone.now() + timedelta(minutes=30)).still_open[0].pk == deposit.pk
    settled = charges.settle_open_deposits(now=timezone.now() + timedelta(minutes=61))
    assert [each.pk for each in settled.not_charged] == [deposit.pk]
    deposit.refresh_from_db()
    assert deposit.status == "not_charged" and deposit.not_charged_reason == "no_charge"
    assert not CardDeposit.objects.filter(status__in=["charging", "uncertain"]).exists()


def test_stripe_unreachable_before_the_charge_says_not_charged(account, stripe_double):
    stripe_double.down = True
    deposit = pay(start(account))
    assert deposit.status == "not_charged" and deposit.not_charged_reason == "processor"
    assert stripe_double.charge_requests == []


def test_no_time_left_means_no_retry(account, stripe_double, monkeypatch):
    monkeypatch.setattr(charges, "RETRY_NEEDS_SECONDS", 60.0)  # more than the request has
    stripe_double.lose_next(1, "refused")
    deposit = pay(start(account))
    assert deposit.status == "uncertain" and len(stripe_double.charge_requests) == 1


def test_a_retry_stripe_refuses_leaves_a_charge_whose_answer_was_lost_uncertain(account, stripe_double):
    stripe_double.lose_next(1, "timeout")  # charged, the answer lost
    stripe_double.lose_next(1, "401")  # the retry refused (the key revoked meanwhile): it says nothing of the first
    deposit = pay(start(account))
    assert deposit.status == "uncertain"  # never "not charged": the card was


@override_settings(DAILY_DEPOSIT_LIMIT_DOLLARS=300)
def test_a_deposit_begun_before_midnight_and_charged_after_counts_in_its_own_day(account, stripe_double):
    yesterday = timezone.now() - timedelta(days=1)
    late = start(account, 200_00, call_sid="CA1", now=yesterday)
    # Its <Pay> outlasts its slot; another family begins and pays, still that day.
    after_the_slot = yesterday + limits.PAY_SLOT + timedelta(seconds=1)
    other = start(account, 200_00, call_sid="CA2", line=charges.deposit_line("+12025550199"), now=after_the_slot)
    assert pay(other).status == "paid"
    refused = pay(late)
    assert refused.status == "not_charged" and refused.not_charged_reason == "daily_limit"


def test_too_little_time_left_to_ask_stripe_charges_nothing_and_says_so(account, stripe_double):
    # Locks ate the request's time: 2.5 s left, of which Stripe may have 1.5 s, less than a charge needs.
    deposit = pay(start(account), seconds=2.5)
    assert deposit.status == "not_charged" and deposit.not_charged_reason == "no_time"
    assert stripe_double.charge_requests == [] and balance(account) == 100_00


def test_stripe_is_asked_within_the_requests_deadline_less_what_recording_needs(account, stripe_double):
    pay(start(account), seconds=6)  # what the request has left as <Pay>'s answer arrives
    [card, charge] = [call.request.req_kwargs["timeout"] for call in stripe_double.mocked.calls]
    assert sum(card) == pytest.approx(2.5) and card[0] < 1  # the card's own budget, connect and answer together
    # What was left, less a second to record, for the connect and the answer together.
    assert 4.5 <= sum(charge) <= 5.0 and charge[0] == 1.0


def test_a_card_used_for_a_third_member_in_a_week_is_refused_before_any_charge(account, stripe_double):
    others = [
        Account.objects.create(member_id=f"77777{n}", pin_hash="x", status="active", verified_at=timezone.now())
        for n in (1, 2)
    ]
    assert pay(start(others[0], call_sid="CA1")).status == "paid"
    assert pay(start(others[1], call_sid="CA2")).status == "paid"
    refused = pay(start(account, call_sid="CA3"))
    assert refused.status == "not_charged" and refused.not_charged_reason == "card_limit"
    assert len(stripe_double.charge_requests) == 2


@override_settings(CARD_DAILY_LIMIT_DOLLARS=300)
def test_a_card_has_a_daily_limit_of_its_own(account, stripe_double):
    assert pay(start(account, 200_00, call_sid="CA1")).status == "paid"
    assert pay(start(account, 150_00, call_sid="CA2")).not_charged_reason == "card_limit"


def test_one_deposit_at_a_time_per_member_pending_ones_included(account):
    start(account)
    with pytest.raises(errors.PaymentInProgress):
        start(account, call_sid="CA2", line=charges.deposit_line("+12025550199"))


def test_a_slot_expires_when_its_pay_must_have_ended(account):
    start(account, now=timezone.now() - limits.PAY_SLOT - timedelta(seconds=1))
    start(account, call_sid="CA2")


@override_settings(DAILY_DEPOSIT_LIMIT_DOLLARS=300)
def test_a_slow_pay_past_its_slot_never_passes_the_members_daily_limit(account, stripe_double):
    # A family types slowly (<Pay>'s timeout is between keys): its slot ends before it does, and another
    # family, on another phone, pays first.
    slow = start(account, 200_00, call_sid="CA1", now=timezone.now() - limits.PAY_SLOT - timedelta(seconds=1))
    other = start(account, 200_00, call_sid="CA2", line=charges.deposit_line("+12025550199"))
    assert pay(other).status == "paid"
    # A reconciliation run meanwhile leaves the slow one open: its <Pay> may still be going.
    assert slow.pk not in [d.pk for d in charges.settle_open_deposits().not_charged]
    refused = pay(slow)
    assert refused.status == "not_charged" and refused.not_charged_reason == "daily_limit"
    assert len(stripe_double.charge_requests) == 1 and balance(account) == 300_00


def test_a_deposit_reconciliation_closed_after_the_longest_pay_is_never_charged(account, stripe_double):
    deposit = start(account, now=timezone.now() - limits.PAY_LONGEST - timedelta(seconds=1))
    settled = charges.settle_open_deposits()
    assert [d.pk for d in settled.not_charged] == [deposit.pk]
    assert pay(deposit).status == "not_charged" and stripe_double.charge_requests == []


def test_stars_from_six_numbers_never_close_a_member(account):
    for n in range(6):
        deposit = start(account, call_sid=f"CA{n}", line=charges.deposit_line(f"+1202555020{n}"))
        pay(deposit, "", result="caller-interrupted-with-star")
    assert pay(start(account, call_sid="CA9", line=charges.deposit_line("+12025550299"))).status == "paid"


@override_settings(DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY=3, DEPOSIT_DECLINES_PER_HOUR=2)
def test_withheld_failures_close_only_that_member_and_declines_only_unvouched_callers(account):
    other = Account.objects.create(member_id="888888", pin_hash="x", status="active", verified_at=timezone.now())
    for n in range(3):
        pay(start(account, call_sid=f"CAw{n}", line="withheld", vouched=False), "", result="caller-hung-up")
    with pytest.raises(errors.TooManyAttempts):
        start(account, call_sid="CAw9", line="withheld", vouched=False)
    start(other, call_sid="CAo", line="withheld", vouched=False)  # another member from a withheld number: fine
    CardDeposit.objects.filter(account=other).delete()
    for n in range(2):
        pay(start(other, call_sid=f"CAd{n}", line=f"unvouched{n}", vouched=False), "pm_card_visa_chargeDeclined")
    with pytest.raises(errors.TooManyAttempts) as busy:
        start(other, call_sid="CAd9", line="unvouched9", vouched=False)
    assert busy.value.scope == "service"
    start(other, call_sid="CAv", line=LINE, vouched=True)  # a number a carrier vouches for still pays


def test_nothing_in_the_database_or_the_log_holds_card_data(account, caplog):
    caplog.set_level("DEBUG")
    pay(start(account))
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM payments_carddeposit")
        rows = " ".join(str(cell) for row in cursor.fetchall() for cell in row)
    for secret in ("xxxxxxxxxxxx4242", "pm_card_visa"):
        assert secret not in rows and secret not in caplog.text


def test_at_log_level_debug_no_request_line_names_a_cards_token():
    """Over real HTTP (urllib3 under the library, which the double at the requests layer never reaches)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    show = (
        "import logging\n"
        "from bench.evening import stripe_stand_in\n"
        "from django.conf import settings\n"
        "logging.getLogger('probe').debug('debug lines are logged')\n"
        "from payments import stripe_api\n"
        "server, settings.STRIPE_API_BASE = stripe_stand_in()\n"
        "print('last four', stripe_api.card_of('pm_card_visa', timeout=5).last4)\n"
        # A library's rare warning naming the URL, and a traceback naming the token: hidden on the handler.
        "url = settings.STRIPE_API_BASE + '/v1/payment_methods/pm_1QcardToken42'\n"
        "logging.getLogger('urllib3.connectionpool').warning('Failed to parse headers (url=%s)', url)\n"
        "try:\n    raise ValueError('No such PaymentMethod: pm_1QcardToken42')\n"
        "except ValueError:\n    logging.getLogger('probe').exception('failed')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_", "PYTEST"))}
    env.update(DEBUG="true", LOG_LEVEL="DEBUG", STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_x")
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", show],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "last four 4242" in result.stdout, result.stderr
    assert "debug lines are logged" in result.stderr and "pm_card_visa" not in result.stderr + result.stdout
    assert "pm_1QcardToken42" not in result.stderr and result.stderr.count("pm_…") == 2, result.stderr
    env["STRIPE_LOG"] = "debug"
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "STRIPE_LOG must be unset" in result.stderr


def test_the_web_workers_share_stripes_library_loaded_before_the_fork():
    """gunicorn loads myibot.wsgi in its master (preload_app): Stripe's library is then in every worker's
    shared pages, not loaded again after the fork."""
    import subprocess
    import sys

    probe = "import sys, django; import myibot.wsgi; print('stripe' in sys.modules)"
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"}
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert found.stdout.strip() == "True", found.stderr


# Stripe's events -----------------------------------------------------------------------------------


def signed(client, event: dict, *, secret: str = "whsec_test_myibot", at: int | None = None):
    import hashlib
    import hmac

    payload = json.dumps(event)
    stamp = at or int(time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return client.post(
        "/stripe/events",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=f"t={stamp},v1={digest}",
        secure=True,
    )


def intent_event(deposit: CardDeposit, kind: str = "payment_intent.succeeded", *, event_id="evt_1", amount=None):
    """Shaped like Stripe's Event object (https://docs.stripe.com/api/events/object) around a PaymentIntent."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "type": kind,
        "data": {
            "object": {
                "id": "pi_3QEvent000000000000000001",
                "object": "payment_intent",
                "amount": amount or deposit.amount_cents,
                "currency": "usd",
                "created": int(time.time()),
                "livemode": False,
                "metadata": {"public_id": str(deposit.public_id), "deposit": str(deposit.pk)},
                "status": "succeeded" if kind.endswith("succeeded") else "requires_payment_method",
                "latest_charge": "ch_3QEvent",
                "last_payment_error": None
                if kind.endswith("succeeded")
                else {"code": "card_declined", "decline_code": "generic_decline", "type": "card_error"},
            }
        },
    }


def test_an_uncertain_deposit_is_credited_once_by_its_succeeded_event_sent_twice(client, account, stripe_double):
    stripe_double.lose_next(2, "refused")
    deposit = pay(start(account))
    assert deposit.status == "uncertain"
    event = intent_event(deposit)
    assert signed(client, event).status_code == 200
    assert signed(client, event).status_code == 200
    deposit.refresh_from_db()
    assert deposit.status == "paid" and balance(account) == 125_00
    assert StripeEvent.objects.get().outcome == "applied"


def test_a_failed_event_after_the_success_changes_nothing(client, account, stripe_double):
    stripe_double.lose_next(2, "refused")
    deposit = pay(start(account))
    signed(client, intent_event(deposit, event_id="evt_ok"))
    signed(client, intent_event(deposit, "payment_intent.payment_failed", event_id="evt_old"))
    deposit.refresh_from_db()
    assert deposit.status == "paid" and balance(account) == 125_00


def test_a_failed_event_closes_an_uncertain_deposit_as_not_charged(client, account, stripe_double):
    stripe_double.lose_next(2, "refused")
    deposit = pay(start(account))
    signed(client, intent_event(deposit, "payment_intent.payment_failed"))
    deposit.refresh_from_db()
    assert deposit.status == "not_charged" and deposit.not_charged_reason == "issuer_decline"


def test_forged_stale_or_foreign_events_change_nothing(client, account, stripe_double):
    stripe_double.lose_next(2, "refused")
    deposit = pay(start(account))
    assert signed(client, intent_event(deposit), secret="whsec_someone_else").status_code == 400
    assert signed(client, intent_event(deposit), at=int(time.time()) - 3600).status_code == 400
    assert not StripeEvent.objects.exists()
    other_amount = intent_event(deposit, event_id="evt_amount", amount=999_00)
    assert signed(client, other_amount).status_code == 200
    live = {**intent_event(deposit, event_id="evt_live"), "livemode": True}
    assert signed(client, live).status_code == 200
    assert set(StripeEvent.objects.values_list("outcome", flat=True)) == {"not ours"}
    deposit.refresh_from_db()
    assert deposit.status == "uncertain" and balance(account) == 100_00


def test_an_event_whose_applying_fails_answers_500_and_is_applied_when_sent_again(
    client, account, stripe_double, monkeypatch
):
    from django.db import OperationalError

    from payments import events

    stripe_double.lose_next(2, "refused")
    deposit = pay(start(account))
    real = events.HANDLERS["payment_intent.succeeded"]
    monkeypatch.setitem(
        events.HANDLERS,
        "payment_intent.succeeded",
        lambda obj, kind: (_ for _ in ()).throw(OperationalError("lock timeout")),
    )
    assert signed(client, intent_event(deposit)).status_code == 500
    monkeypatch.setitem(events.HANDLERS, "payment_intent.succeeded", real)
    assert signed(client, intent_event(deposit)).status_code == 200
    assert balance(account) == 125_00 and StripeEvent.objects.get().outcome == "applied"


def test_a_version_3_paid_deposit_keeps_its_charge_and_is_refundable(account, stripe_double):
    deposit = start(account)
    CardDeposit.objects.filter(pk=deposit.pk).update(charged_by="connector")
    paid = charges.card_deposit_paid(
        deposit_id=deposit.pk,
        call_sid=deposit.call_sid,
        paid=charges.PayResult(result="success", confirmation_code="pi_3QOld0001", card_number="xxxx4242"),
        deadline=time.monotonic() + 13,
    )
    assert paid.status == "paid" and paid.payment_intent == "pi_3QOld0001" and stripe_double.charge_requests == []
    assert codes.is_code(charges.confirmation_code(paid))


# The hold ends at a local midnight, clock changes included (a sixth review) ---------------------------------


NEW_YORK = "America/New_York"


@override_settings(TIME_ZONE=NEW_YORK, CARD_FUNDS_HOLD_HOURS=72)
@pytest.mark.parametrize(
    ("charged", "free_from"),
    [
        ((2026, 10, 30, 16), (2026, 11, 3)),  # clocks go back on Sunday 1 November: 72 h would end at 23:00
        ((2026, 3, 6, 16), (2026, 3, 10)),  # clocks go forward on Sunday 8 March: 72 h would end at 01:00
        ((2026, 12, 5, 23, 59), (2026, 12, 9)),
    ],
)
def test_the_hold_ends_at_the_local_midnight_the_member_hears_across_a_clock_change(account, charged, free_from):
    from datetime import date, datetime, time
    from zoneinfo import ZoneInfo

    from accounts import holds as money_holds
    from myibot import local_time
    from payments import holds

    when = datetime(*charged, tzinfo=ZoneInfo(NEW_YORK))
    release = charges.release_at(when)
    assert local_time.local(release).time() == time(0, 0) and local_time.local_date(release) == date(*free_from)
    deposit = charges.card_deposit_start(
        account=account, amount_cents=100_00, call_sid="CA1", line="l", vouched=True, now=when
    )
    charges.credit(deposit_id=deposit.pk, payment_intent="pi_3Qhold", amount_cents=100_00, now=when)
    assert holds.card_money_held(account.pk, when + timedelta(minutes=1)).until == date(*free_from)
    assert money_holds.held(account_id=account.pk, now=release - timedelta(minutes=1)).cents == 100_00
    assert money_holds.held(account_id=account.pk, now=release).cents == 0


@pytest.mark.parametrize("budget", [0.5, 2.5, 5.0, 8.0, 20.0])
def test_a_stripe_budget_bounds_the_connect_and_the_answer_together(budget, settings):
    """requests bounds the connect and the read apart: the connect's share comes off the read's, so that a slow
    handshake and a slow answer together still end inside the budget the action request's deadline gave."""
    from payments import stripe_api

    connect, read = stripe_api.connect_and_read(budget)
    assert connect + read == pytest.approx(budget) and 0 < connect <= stripe_api.CONNECT_SECONDS and read > connect
    settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE = "sk_test_budget", ""
    client = stripe_api._client(budget)
    assert client._requestor._client._timeout == (connect, read)
