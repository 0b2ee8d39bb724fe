"""The simulator acts out <Pay> as Twilio documents it, charges as Stripe's test mode does, and posts what Twilio posts.

Canned TwiML through a fake transport checks the simulator itself; `manage.py
call --deposit` in process checks it against the real deposit line.
"""

from __future__ import annotations

from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from twilio.request_validator import RequestValidator

from payments.models import CardDeposit
from phone import clock, payment
from phone.call import Press, Prompt, SimulatedCall, scripted
from phone.management.commands import call as call_command_module
from phone.twiml import CallFailed
from tests.phone.test_simulator import BASE, GOODBYE, TOKEN, Fake, run_command, said, twiml, waits


@pytest.fixture(autouse=True)
def _stripe(request):
    """The deposit line charges through Stripe's API, answered at the HTTP layer, where a test uses the database."""
    if request.node.get_closest_marker("django_db"):
        request.getfixturevalue("stripe_double")


CARD = "4242424242424242"
PROMPTS = (
    '<Prompt for="payment-card-number"><Say>Card number?</Say></Prompt>'
    '<Prompt for="payment-card-number" errorType="timeout"><Say>No card number.</Say></Prompt>'
    '<Prompt for="payment-card-number" errorType="invalid-card-number"><Say>Bad card number.</Say></Prompt>'
    '<Prompt for="payment-card-number" errorType="invalid-card-type"><Say>Card not taken.</Say></Prompt>'
    '<Prompt for="expiration-date"><Say>Expiry?</Say></Prompt>'
    '<Prompt for="expiration-date" errorType="invalid-date timeout"><Say>Bad expiry.</Say></Prompt>'
    '<Prompt for="security-code"><Say>Security code?</Say></Prompt>'
    '<Prompt for="security-code" errorType="invalid-security-code timeout"><Say>Bad security code.</Say></Prompt>'
    '<Prompt for="postal-code"><Say>ZIP?</Say></Prompt>'
    '<Prompt for="postal-code" errorType="invalid-postal-code timeout"><Say>Bad ZIP.</Say></Prompt>'
    '<Prompt for="payment-processing"><Say>Charging.</Say></Prompt>'
)
WHOLE_CARD = [f"{CARD}#", "1230", "123", "20001"]


def pay(attributes: str = 'chargeAmount="25.00" maxAttempts="2" timeout="10"', prompts: str = PROMPTS) -> str:
    return twiml(f'<Pay action="/paid?n=1" {attributes}>{prompts}</Pay>')


def pay_call(keys, document: str | None = None, **options) -> tuple[SimulatedCall, Fake]:
    fake = Fake({"/twilio/voice": document or pay(), "/paid?n=1": GOODBYE})
    call = SimulatedCall(BASE, TOKEN, fake, today=date(2026, 12, 1), **options)
    call.place(keys if callable(keys) else scripted(keys))
    return call, fake


def result(fake: Fake) -> dict[str, str]:
    [posted] = fake.to("/paid?n=1")
    return posted


def pay_notes(call: SimulatedCall) -> list[str]:
    return [event.text for event in call.transcript if event.kind == "pay"]


# What Twilio posts ---------------------------------------------------------------------


def test_it_posts_a_success_with_twilios_usual_parameters_and_the_charge_signed_like_every_webhook():
    call, fake = pay_call(WHOLE_CARD)
    posted = result(fake)
    assert posted["Result"] == "success"
    assert posted["PaymentConfirmationCode"].startswith("ch_") and len(posted["PaymentConfirmationCode"]) > 10
    assert posted["PaymentCardType"] == "visa" and posted["PaymentCardNumber"] == "xxxxxxxxxxxx4242"
    assert posted["ExpirationDate"] == "1230" and posted["SecurityCode"] == "***"
    assert posted["PaymentCardPostalCode"] == "20001" and posted["PaymentMethod"] == "credit-card"
    assert posted["PaymentToken"].startswith("tok_") and posted["ProfileId"].startswith("cus_")
    for usual in ("CallSid", "AccountSid", "From", "To", "Caller", "Called", "CallStatus", "Direction", "ApiVersion"):
        assert posted[usual] == call.params()[usual]
    assert posted["StirVerstat"] == "TN-Validation-Passed-A"
    assert CARD not in " ".join(posted.values())  # Twilio never posts the card number
    [request] = [request for request in fake.requests if request.path == "/paid?n=1"]
    assert RequestValidator(TOKEN).validate(request.url, request.params, request.headers["X-Twilio-Signature"])
    assert call.ended_by == "server" and said(call)[-1] == "Goodbye."


def test_the_reference_is_the_same_for_the_same_call_and_differs_between_calls():
    _first, fake = pay_call(WHOLE_CARD, call_sid="CA" + "1" * 32)
    _again, fake_again = pay_call(WHOLE_CARD, call_sid="CA" + "1" * 32)
    _other, fake_other = pay_call(WHOLE_CARD, call_sid="CA" + "2" * 32)
    reference = result(fake)["PaymentConfirmationCode"]
    assert result(fake_again)["PaymentConfirmationCode"] == reference
    assert result(fake_other)["PaymentConfirmationCode"] != reference


@pytest.mark.parametrize(
    ("variant", "prefix", "masked"),
    [
        ("charge", "ch_", "xxxxxxxxxxxx4242"),
        ("intent", "pi_", "************4242"),
        ("dashed", "ch_", "xxxx-xxxx-xxxx-4242"),
        ("sparse", "pi_", None),
    ],
)
def test_each_variant_posts_the_shape_it_names(variant, prefix, masked):
    _call, fake = pay_call(WHOLE_CARD, pay_variant=variant)
    posted = result(fake)
    assert posted["Result"] == "success" and posted["PaymentConfirmationCode"].startswith(prefix)
    assert posted.get("PaymentCardNumber") == masked
    sparse = variant == "sparse"
    for optional in ("PaymentCardType", "ExpirationDate", "PaymentToken", "ProfileId", "PaymentCardPostalCode"):
        assert (optional in posted) is not sparse, optional


def test_it_refuses_a_variant_it_does_not_know():
    with pytest.raises(ValueError, match="pay_variant='odd'"):
        SimulatedCall(BASE, TOKEN, Fake({}), pay_variant="odd")


def test_a_declined_test_card_posts_a_connector_error_with_twilios_code_and_stripes_words():
    call, fake = pay_call([f"{payment.DECLINED}#", "1230", "123", "20001"])
    posted = result(fake)
    assert posted["Result"] == "payment-connector-error" and posted["PayErrorCode"] == "64012"
    assert posted["PaymentError"] == "Your card was declined." and posted["ConnectorError"] == "card_declined"
    assert "PaymentConfirmationCode" not in posted and posted["PaymentCardNumber"] == "xxxxxxxxxxxx0002"
    [charging] = [event for event in call.transcript if event.kind == "charging"]
    assert "declined" in charging.note

    _call, fake = pay_call([f"{payment.DECLINED}#", "1230", "123", "20001"], pay_variant="sparse")
    assert {name: value for name, value in result(fake).items() if name.startswith("Pay") or name == "Result"} == {
        "Result": "payment-connector-error",
        "PayErrorCode": "64012",
    }


def test_any_other_valid_card_is_declined_as_stripes_test_mode_declines_a_real_card():
    _call, fake = pay_call(["5555555555554444#", "1230", "123", "20001"])
    posted = result(fake)
    assert posted["Result"] == "payment-connector-error" and posted["PayErrorCode"] == "64012"
    assert "test mode" in posted["PaymentError"] and posted["PaymentCardType"] == "mastercard"


def test_stripe_refuses_a_charge_under_50_cents():
    _call, fake = pay_call(WHOLE_CARD, pay('chargeAmount="0.25"'))
    assert result(fake)["Result"] == "payment-connector-error" and result(fake)["PayErrorCode"] == "64008"


@pytest.mark.parametrize("charge", ["", 'chargeAmount="0"'])
def test_no_charge_amount_tokenizes_the_card_instead(charge):
    call, fake = pay_call(WHOLE_CARD, pay(charge))
    posted = result(fake)
    assert posted["Result"] == "success" and "PaymentConfirmationCode" not in posted
    assert posted["PaymentToken"] and posted["ProfileId"]
    assert "tokenizes" in pay_notes(call)[0]


# The caller's keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("step", range(4))
def test_star_at_any_step_ends_pay_at_once(step):
    keys = [*WHOLE_CARD[:step], "12*"]
    call, fake = pay_call(keys)
    assert result(fake)["Result"] == "caller-interrupted-with-star"
    assert "PaymentConfirmationCode" not in result(fake)
    assert not [event for event in call.transcript if event.kind == "charging"]
    assert waits(call)[-1] == 0


def test_a_card_number_that_fails_the_luhn_check_hears_its_error_prompt_and_uses_an_attempt():
    call, fake = pay_call(["4242424242424241#", *WHOLE_CARD])
    assert said(call)[:3] == ["Card number?", "Bad card number.", "Expiry?"]
    assert "invalid-card-number: the Luhn check fails (attempt 1 of 2)" in pay_notes(call)
    assert result(fake)["Result"] == "success"
    assert [prompt.attempt for prompt in call.prompts[:2]] == [1, 2] and call.prompts[1].error == "invalid-card-number"


def test_too_many_failed_attempts_ends_pay_when_the_last_attempt_fails():
    call, fake = pay_call(["4242424242424241#", "42#"])
    posted = result(fake)
    assert posted["Result"] == "too-many-failed-attempts" and posted["PaymentError"] == "invalid-card-number"
    assert "Expiry?" not in said(call)

    _call, fake = pay_call(["4242424242424241#"], pay('chargeAmount="25.00" maxAttempts="1"'))
    assert result(fake)["Result"] == "too-many-failed-attempts"


def test_silence_hears_the_timeout_prompt_and_counts_like_a_failed_attempt():
    call, fake = pay_call([f"{CARD}#", "", ""])
    assert said(call)[:3] == ["Card number?", "Expiry?", "Bad expiry."]
    assert result(fake)["Result"] == "too-many-failed-attempts" and result(fake)["PaymentError"] == "timeout"
    assert call.totals.silence_seconds == 20 and call.totals.entries == 1


@pytest.mark.parametrize(
    ("keys", "error"),
    [
        (["378282246310005#"], "invalid-card-type"),  # amex, which validCardTypes leaves out here
        ([f"{CARD}#", "0126"], "invalid-date"),  # January 2026 is past on December 1, 2026
        ([f"{CARD}#", "1330"], "invalid-date"),
        ([f"{CARD}#", "1230", "12"], "invalid-security-code"),
        ([f"{CARD}#", "1230", "123", "2000"], "invalid-postal-code"),
    ],
)
def test_it_checks_each_step_as_pay_does(keys, error):
    _call, fake = pay_call(keys + keys[-1:], pay('chargeAmount="25.00" maxAttempts="2" validCardTypes="visa"'))
    assert result(fake)["Result"] == "too-many-failed-attempts" and result(fake)["PaymentError"] == error


def test_an_amex_needs_4_digits_and_hears_the_prompt_for_its_card_type():
    prompts = PROMPTS.replace(
        '<Prompt for="postal-code">',
        '<Prompt for="security-code" cardType="amex"><Say>The 4 digits on the front.</Say></Prompt>'
        '<Prompt for="postal-code">',
    )
    call, fake = pay_call(
        ["378282246310005#", "1230", "123", "1234", "20001"], pay('chargeAmount="25.00" maxAttempts="2"', prompts)
    )
    assert said(call).count("The 4 digits on the front.") == 1 and "Bad security code." in said(call)
    assert result(fake)["PaymentCardType"] == "amex"
    assert result(fake)["PaymentCardNumber"] == "xxxxxxxxxxx0005"


def test_an_attempt_prompt_is_heard_on_its_attempt():
    prompts = (
        '<Prompt for="expiration-date" attempt="1"><Say>Expiry, MMYY?</Say></Prompt>'
        '<Prompt for="expiration-date" attempt="2 3"><Say>Expiry, for example 0 3 2 9?</Say></Prompt>'
    )
    call, _fake = pay_call(
        [f"{CARD}#", "", "1230", "123", "20001"], pay('chargeAmount="25.00" maxAttempts="3"', prompts)
    )
    assert "Expiry, MMYY?" in said(call) and "Expiry, for example 0 3 2 9?" in said(call)


def test_without_a_prompt_pay_says_its_own_words_in_its_language():
    call, fake = pay_call(WHOLE_CARD, pay('chargeAmount="25.00" language="es-MX"', ""))
    own = [event for event in call.transcript if event.kind == "twilio"]
    assert [event.language for event in own] == ["es-MX"] * 5  # four steps, then the processing
    assert "the card number" in own[0].text and "no <Prompt>" in own[0].text
    assert said(call) == ["Goodbye."] and result(fake)["Result"] == "success"
    assert call.totals.seconds >= 5 * clock.TWILIO_PROMPT_SECONDS


@pytest.mark.parametrize(
    ("attributes", "asked"),
    [
        ('securityCode="false"', ["Card number?", "Expiry?", "ZIP?"]),
        ('postalCode="false"', ["Card number?", "Expiry?", "Security code?"]),
        ('postalCode="20001" securityCode="false"', ["Card number?", "Expiry?"]),
    ],
)
def test_it_asks_for_the_security_and_postal_codes_unless_told_not_to(attributes, asked):
    answers = {"Card number?": f"{CARD}#", "Expiry?": "1230", "Security code?": "123", "ZIP?": "20001"}
    call, fake = pay_call([answers[prompt] for prompt in asked], pay(f'chargeAmount="25.00" {attributes}'))
    assert said(call)[: len(asked)] == asked and said(call)[len(asked)] == "Charging."
    assert result(fake)["Result"] == "success"


def test_hanging_up_inside_pay_posts_caller_hung_up_and_ends_the_call():
    call, fake = pay_call([f"{CARD}#"])
    assert result(fake)["Result"] == "caller-hung-up"
    assert call.ended_by == "caller" and "Goodbye." not in said(call)
    assert fake.to("/twilio/status")[0]["CallStatus"] == "completed"


def test_each_step_reaches_the_script_as_a_pay_prompt():
    met: list[Prompt] = []

    def keys(prompt: Prompt) -> str:
        met.append(prompt)
        return WHOLE_CARD[len(met) - 1]

    pay_call(keys)
    assert [prompt.pay_step for prompt in met] == [
        "payment-card-number",
        "expiration-date",
        "security-code",
        "postal-code",
    ]
    assert {(prompt.attempt, prompt.max_attempts, prompt.timeout, prompt.finish_on_key) for prompt in met} == {
        (1, 2, 10, "#")
    }
    assert met[0].heard == "Card number?"


def test_keys_typed_early_stop_the_prompt_and_keys_after_the_pound_are_lost():
    call, fake = pay_call([Press.at_once(f"{CARD}#99"), "1230", "123", "20001"])
    assert "Card number?" not in said(call)
    [keys] = [event for event in call.transcript if event.kind == "keys"][:1]
    assert "'99' came after the entry ended: lost" in keys.note
    assert result(fake)["Result"] == "success"


def test_typing_the_card_waiting_and_charging_take_time_on_the_clock():
    call, _fake = pay_call(WHOLE_CARD)
    assert call.totals.typing_seconds == pytest.approx(29 * clock.KEY_SECONDS)  # 16 digits and #, 4, 3, 5
    assert waits(call) == [0, 10, 10, 10]  # # ends the card number; the others wait for the timeout
    assert call.totals.wait_seconds == 30 and call.totals.entries == 4
    assert call.totals.charging_seconds == clock.CHARGING_SECONDS
    heard = sum(event.seconds for event in call.transcript if event.kind in ("say", "pause"))
    assert call.totals.seconds == pytest.approx(heard + 30 + 29 * clock.KEY_SECONDS + clock.CHARGING_SECONDS)


def test_it_names_attributes_twilio_does_not_document_and_plays_on():
    call, fake = pay_call(WHOLE_CARD, pay('chargeAmount="25.00" method="POST" colour="blue"'))
    skipped = [event.text for event in call.transcript if event.kind == "unsupported"]
    assert any("<Pay method>" in text for text in skipped) and any("<Pay colour>" in text for text in skipped)
    assert result(fake)["Result"] == "success"


def test_it_notes_an_action_twilio_would_not_post_to():
    fake = Fake({"/twilio/voice": pay().replace('action="/paid?n=1"', 'action="http://plain.example/paid?n=1"')})
    call = SimulatedCall(BASE, TOKEN, fake, today=date(2026, 12, 1))
    call.place(scripted(WHOLE_CARD))
    assert any("posts to https only" in note for note in pay_notes(call))
    assert [request.url for request in fake.requests if "paid" in request.url] == ["http://plain.example/paid?n=1"]


# Strict as Twilio ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "refused"),
    [
        (twiml('<Pay chargeAmount="25.00"/>'), "no action"),
        (pay('input="speech"'), "input='speech'"),
        (pay('paymentMethod="paypal"'), "paymentMethod='paypal'"),
        (pay('maxAttempts="0"'), "maxAttempts='0'"),
        (pay('maxAttempts="4"'), "maxAttempts='4'"),
        (pay('maxAttempts="two"'), "maxAttempts='two'"),
        (pay('timeout="-3"'), "timeout='-3'"),
        (pay('chargeAmount="25 dollars"'), "chargeAmount='25 dollars'"),
        (pay('chargeAmount="-0.5"'), "chargeAmount='-0.5'"),
        (pay('chargeAmount="1000001"'), "chargeAmount='1000001'"),
        (pay('language="es-US"'), "language='es-US'"),
        (pay('securityCode="maybe"'), "securityCode='maybe'"),
        (pay('tokenType="forever"'), "tokenType='forever'"),
        (pay('validCardTypes="visa paypal"'), "validCardTypes="),
        (pay('currency="dollars"'), "currency='dollars'"),
        (pay('bankAccountType="consumer-checking"'), "64017"),
        (pay("", '<Prompt for="card-number"><Say>Card?</Say></Prompt>'), "<Prompt for='card-number'>"),
        (pay("", '<Prompt for="payment-completed"><Say>Done.</Say></Prompt>'), "<Prompt for='payment-completed'>"),
        (pay("", '<Prompt for="expiration-date" errorType="card-declined"><Say>No.</Say></Prompt>'), "errorType"),
        (pay("", '<Prompt for="expiration-date" attempt="0"><Say>No.</Say></Prompt>'), "attempt='0'"),
        (pay("", '<Prompt for="security-code" cardType="paypal"><Say>No.</Say></Prompt>'), "cardType"),
        (
            pay("", '<Prompt for="postal-code" requireMatchingInputs="true"><Say>Again.</Say></Prompt>'),
            "requireMatchingInputs",
        ),
        (pay("", "<Say>Card number?</Say>"), "<Say> inside <Pay>"),
        (pay("", '<Prompt for="postal-code"><Gather/></Prompt>'), "<Gather> inside <Prompt>"),
        (pay("", '<Prompt for="postal-code"></Prompt>'), "nothing in it"),
        (pay("", "Card number?"), "text inside <Pay>"),
        (pay('method="GET"'), "POST only"),
    ],
)
def test_it_refuses_a_pay_twilio_would_not_take(document, refused):
    with pytest.raises(CallFailed) as failure:
        pay_call(WHOLE_CARD, document)
    assert refused in str(failure.value)


def test_it_acts_out_card_payments_only():
    with pytest.raises(CallFailed, match="card payments only"):
        pay_call([], pay('paymentMethod="ach-debit"', ""))


def test_it_takes_what_twilio_documents():
    document = pay(
        'chargeAmount="25" currency="USD" language="ES-mx" maxAttempts="3" timeout="7" tokenType="one-time" '
        'validCardTypes="visa mastercard" minPostalCodeLength="5" description="MyiBot deposit 1" '
        'statusCallback="/pay-status" paymentConnector="Stripe_1" input="dtmf" paymentMethod="credit-card"',
        PROMPTS.replace('<Prompt for="payment-processing">', '<Prompt for="payment-processing" attempt="1 2">')
        + '<Prompt for="bank-account-number" requireMatchingInputs="true"><Play>https://x.example/a.mp3</Play></Prompt>'
        + '<Parameter name="note" value="for a Generic connector"/>',
    )
    call, fake = pay_call(WHOLE_CARD, document)
    assert result(fake)["Result"] == "success"
    assert "its own words in es-MX" in pay_notes(call)[0] and "'Stripe_1'" in pay_notes(call)[0]
    # The statusCallback hears each entry's progress; what it answers changes nothing in the call.
    assert [(posted["For"], posted["Attempt"]) for posted in fake.to("/pay-status")] == [
        ("payment-card-number", "1"),
        ("expiration-date", "1"),
        ("security-code", "1"),
        ("postal-code", "1"),
    ]
    assert any("statusCallback: progress posted" in note for note in pay_notes(call))


# manage.py call --deposit, against the real deposit line ------------------------------------------

DEPOSIT_KEYS = "123456,1,25#,1,4242424242424242#,1230,123,20001"


def deposit_call(*args: str) -> str:
    out = StringIO()
    call_command("call", "--deposit", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_deposit_command_pays_by_card_against_the_real_deposit_line(account):
    out = deposit_call("--keys", DEPOSIT_KEYS)
    assert out.startswith("Calling the deposit line; <Pay> variant charge:")
    assert "  SAY    [en-US Polly.Joanna] Please enter the card number, then press pound." in out
    assert "  KEYS   4242424242424242#   (# ends it at once)" in out
    assert "  TOKEN  2 s   (no chargeAmount: tokenized as pm_card_visa, not charged)" in out
    assert "  SAY    [en-US Polly.Joanna] Thank you. 25 dollars are on the account." in out
    assert "Your card ending in 4, 2, 4, 2 was charged." in out
    assert "14.5 s typing the card, 2 s for <Pay> to process it" in out.splitlines()[-1]
    deposit = CardDeposit.objects.get()
    assert deposit.status == "paid" and deposit.payment_intent.startswith("pi_") and deposit.card_last4 == "4242"
    account.refresh_from_db()
    assert account.balance_cents == 125_00


@pytest.mark.django_db
def test_the_deposit_command_pays_in_spanish(account):
    out = deposit_call("--lang", "es", "--keys", DEPOSIT_KEYS)
    assert "  KEYS   2   (lang=es: the caller picks their language; posts Digits='2')" in out
    assert "its own words in es-MX" in out
    # Every prompt from the member ID on is said in the Spanish voice, <Pay>'s included.
    after = out.split("KEYS   2 ", 1)[1]
    assert "[en-US" not in after and after.count("[es-US Polly.Lupe]") >= 10
    assert CardDeposit.objects.get().status == "paid"


@pytest.mark.django_db
@pytest.mark.parametrize("variant", list(payment.VARIANTS))
def test_the_deposit_line_takes_every_variant(account, variant):
    out = deposit_call("--pay-variant", variant, "--keys", DEPOSIT_KEYS)
    deposit = CardDeposit.objects.get()
    # Whatever the variant, <Pay> only tokenized: the service charged one PaymentIntent.
    assert deposit.status == "paid" and deposit.payment_intent.startswith("pi_")
    assert f"<Pay> variant {variant}: {payment.VARIANTS[variant].about}" in out
    # Without the masked number, the last four come from Stripe's PaymentMethod.
    assert "Your card ending in 4, 2, 4, 2 was charged." in out
    assert "Thank you. 25 dollars are on the account." in out


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("card_keys", "result", "heard"),
    [
        ("4000000000000002#,1230,123,20001", "success", "The card was declined."),
        ("4000000000009995#,1230,123,20001", "success", "There is not enough money on the card."),
        ("4242424242424242#,12*", "caller-interrupted-with-star", "You pressed star, so the payment stopped."),
        ("4242424242424241#,4242424242424241#", "too-many-failed-attempts", "The card details were not accepted."),
        (",", "too-many-failed-attempts", "The card details were not accepted."),
    ],
)
def test_the_deposit_line_charges_nothing_for_each_other_result(account, card_keys, result, heard):
    out = deposit_call("--keys", f"123456,1,25#,1,{card_keys}")
    assert f"Your card was not charged. {heard}" in out
    deposit = CardDeposit.objects.get()
    assert deposit.status == "not_charged" and deposit.result == result
    account.refresh_from_db()
    assert account.balance_cents == 100_00


@pytest.mark.django_db
def test_a_caller_hanging_up_inside_pay_leaves_nothing_charged(account):
    out = deposit_call("--keys", "123456,1,25#,1,4242424242424242#")
    assert "posts Result='caller-hung-up'" in out and "Call ended (caller)" in out
    assert CardDeposit.objects.get().result == "caller-hung-up"


@pytest.mark.django_db
@override_settings(TWILIO_DEPOSIT_AUTH_TOKEN="a-pci-subaccount-token")
def test_the_deposit_command_signs_with_the_deposit_lines_token(account):
    deposit_call("--keys", DEPOSIT_KEYS)
    assert CardDeposit.objects.get().status == "paid"
    with pytest.raises(CommandError, match="TWILIO_DEPOSIT_AUTH_TOKEN"):
        deposit_call("--keys", DEPOSIT_KEYS, "--token", "not-the-servers-token")


def test_the_command_documents_deposit_and_pay_variant():
    text = " ".join(call_command_module.Command().create_parser("manage.py", "call").format_help().split())
    assert "--deposit" in text and "/twilio/deposit" in text
    assert "--pay-variant {charge,intent,dashed,sparse}" in text and "(default charge)" in text


def test_the_command_plays_a_variant_against_a_fake_server(monkeypatch):
    fake = Fake({"/twilio/deposit": pay(), "/paid?n=1": GOODBYE})
    out = run_command(
        "--deposit", "--pay-variant", "intent", "--keys", ",".join(WHOLE_CARD), fake=fake, monkeypatch=monkeypatch
    )
    assert result(fake)["PaymentCardNumber"] == "************4242"
    assert "  PAY    posts Result='success' PaymentConfirmationCode='pi_" in out
    assert fake.requests[0].params["To"] == "+12025000100"


# --then: the test processor's bad days, and the events it sends -------------------------------


@pytest.fixture
def test_processor(settings):
    """The simulator's own processor (phone/processor.py) in place of the HTTP double: DEBUG, no key."""
    settings.STRIPE_SECRET_KEY = ""
    settings.DEBUG = True


UNCERTAIN_EN = (
    "We do not know yet if your card was charged. Please do not pay again: if it was charged, the money will "
    "reach the account by itself. The member will hear it when they check their balance. Goodbye."
)


@pytest.mark.django_db
def test_a_lost_answer_is_uncertain_then_stripes_event_credits_it_once(account, test_processor):
    out = deposit_call("--then", "uncertain", "--keys", DEPOSIT_KEYS)
    heard, after = out.split("Call ended", 1)
    assert UNCERTAIN_EN in heard and "Your card ending" not in heard
    assert "  STRIPE payment_intent.succeeded -> /stripe/events: 200 applied: card deposit" in after
    deposit = CardDeposit.objects.get()
    assert deposit.status == "paid" and deposit.payment_intent.startswith("pi_")
    account.refresh_from_db()
    assert account.balance_cents == 125_00
    # The processor answers again after the call; the next deposit is charged as usual.
    out = deposit_call("--from", "+12026230009", "--keys", DEPOSIT_KEYS)
    assert "Thank you. 25 dollars are on the account." in out
    assert "payment_intent.succeeded -> /stripe/events: 200 applied: card deposit" in out
    account.refresh_from_db()
    assert account.balance_cents == 150_00


@pytest.mark.django_db
def test_a_failing_stripe_is_uncertain_and_closed_as_not_charged_an_hour_later(account, test_processor):
    from datetime import timedelta

    from django.utils import timezone

    from payments import charges

    out = deposit_call("--lang", "es", "--then", "stripe-fails", "--keys", DEPOSIT_KEYS)
    assert "Todavía no sabemos si se hizo el cobro a su tarjeta." in out and "STRIPE" not in out
    deposit = CardDeposit.objects.get()
    assert deposit.status == "uncertain"
    charges.settle_open_deposits(now=timezone.now() + timedelta(minutes=61), resolve=True)
    deposit.refresh_from_db()
    assert deposit.status == "not_charged" and deposit.not_charged_reason == "no_charge"
    account.refresh_from_db()
    assert account.balance_cents == 100_00


def test_the_stripe_modes_play_only_in_process(settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="--then plays the test processor inside this process"):
        deposit_call("--url", "http://127.0.0.1:9", "--then", "stripe-fails", "--keys", DEPOSIT_KEYS)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "how",
    [
        ["--then", "dispute", "--keys", DEPOSIT_KEYS],
        ["--keys", DEPOSIT_KEYS.replace("4242424242424242", "4000000000000259")],
        ["--card", "4000000000000259", "--keys", "123456,1,25#,1"],
    ],
)
def test_a_disputed_charge_takes_the_money_back_after_the_call(account, test_processor, how):
    out = deposit_call(*how)
    assert "Thank you. 25 dollars are on the account." in out
    assert "  STRIPE charge.dispute.created -> /stripe/events: 200 applied: dispute dp_" in out
    assert (
        "STRIPE charge.dispute.funds_withdrawn -> /stripe/events: 200 applied:" in out
        and "2500 cents taken back" in out
    )
    account.refresh_from_db()
    assert account.balance_cents == 100_00


@pytest.mark.django_db
def test_a_refund_that_fails_gives_the_money_back(account, test_processor):
    from payments.models import Refund

    out = deposit_call("--then", "refund-fails", "--keys", DEPOSIT_KEYS)
    deposit = CardDeposit.objects.get()
    assert f"  REFUND card deposit {deposit.pk}: an operator refunds it; Stripe answers pending" in out
    assert "  STRIPE refund.failed -> /stripe/events: 200 applied: refund " in out
    refund = Refund.objects.get()
    assert refund.status == "failed" and refund.given_back_by is not None
    account.refresh_from_db()
    assert account.balance_cents == 125_00


@pytest.mark.django_db
def test_card_types_a_whole_card_at_every_pay_step(account):
    out = deposit_call("--card", "4000000000000002", "--keys", "123456,1,25#,1,2")
    assert "  KEYS   4000000000000002#   (# ends it at once)" in out
    assert "  KEYS   123   (no #: <Pay> waits 10 s for another key, then checks them)" in out
    assert "Your card was not charged. The card was declined." in out
    assert CardDeposit.objects.get().status == "not_charged"


@pytest.mark.parametrize("card", ["4242", "4242-4242-4242-4242"])
def test_card_is_a_card_number(card):
    with pytest.raises(CommandError, match="--card is a card number of 12 to 19 digits, with --deposit"):
        deposit_call("--card", card, "--keys", "1")


def test_card_is_for_the_deposit_line():
    with pytest.raises(CommandError, match="--card is a card number of 12 to 19 digits, with --deposit"):
        call_command("call", "--card", "4242424242424242", "--keys", "1", stdout=StringIO())


def test_keys_no_phone_has_are_refused():
    with pytest.raises(CommandError, match=r"a phone has 0-9, \* and # only, not 'abc', 'h'"):
        call_command("call", "--keys", "12,abc,h", stdout=StringIO())
