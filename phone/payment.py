"""What Twilio's <Pay> and the Stripe Pay connector do with the card a caller types, and what Twilio posts.

phone.call plays each payment step of a <Pay> (phone.twiml.Pay.steps) and asks
this module what <Pay> makes of the keys (check), what the connector does with
the card (charge), and what Twilio posts to the action URL (posted). Nothing here
talks to anyone: it is Twilio's side of the call, as its pages document it, and
Stripe's test mode, as Stripe's documented test cards behave.

- Each step is checked as <Pay> checks it: the card number by its length, the
  Luhn check (invalid-card-number) and validCardTypes (invalid-card-type); the
  expiration date as MMYY, not in the past (invalid-date); the security code, 3
  digits or 4 for amex (invalid-security-code); the postal code, at least
  minPostalCodeLength or 5 digits (invalid-postal-code).
- The Stripe connector in test mode, tokenizing (no chargeAmount, tokenType
  payment-method, as the deposit line asks): each of Stripe's test cards
  (TEST_CARDS) becomes Stripe's own test PaymentMethod for it (pm_card_visa ...),
  posted as PaymentToken; the test processor (phone/processor.py) then charges it
  as Stripe would. Any other number is refused as test mode refuses a real card.
- Charging inside <Pay> (version 3, a chargeAmount): 4242 4242 4242 4242 is
  charged; 4000 0000 0000 0002 is declined ("Your card was declined.", Twilio's
  error 64012); under 0.50 (Stripe's least charge in USD) the charge is refused.
- What Twilio posts where its pages leave it open comes in VARIANTS: the
  reference a Charge (ch_) or a PaymentIntent (pi_), the card number masked
  xxxxxxxxxxxx4242, ************4242 or xxxx-xxxx-xxxx-4242, and every
  optional field sent, or only what a result cannot go without.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from phone.twiml import Pay

# Stripe's test cards the connector acts on (docs.stripe.com/testing).
CHARGED = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
AUTHENTICATION_REQUIRED = "4000002500003155"
DISPUTED = "4000000000000259"


@dataclass(frozen=True)
class TestCard:
    """What Stripe's test mode does with one of its test cards: its PaymentMethod, and the card error, if any."""

    payment_method: str
    code: str = ""
    decline_code: str = ""
    message: str = ""


TEST_CARDS = {
    CHARGED: TestCard("pm_card_visa"),
    DECLINED: TestCard("pm_card_visa_chargeDeclined", "card_declined", "generic_decline", "Your card was declined."),
    INSUFFICIENT_FUNDS: TestCard(
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    # error_on_requires_action: a bank's 3-D Secure demand becomes a card error.
    AUTHENTICATION_REQUIRED: TestCard(
        "pm_card_authenticationRequiredOnSetup",
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
    DISPUTED: TestCard("pm_card_createDispute"),
}


def card_for_payment_method(payment_method: str) -> str | None:
    """The test card a test PaymentMethod stands for, or None."""
    return next((card for card, test in TEST_CARDS.items() if test.payment_method == payment_method), None)


# Twilio's error code when the gateway rejected the card, and Stripe's words and code for it.
GATEWAY_REJECTED_CARD = "64012"
GATEWAY_REJECTED_CHARGE = "64008"
CARD_DECLINED = "Your card was declined."
LIVE_CARD_IN_TEST_MODE = (
    "Your card was declined. Your request was in test mode, but used a non test (live) card. "
    "For a list of valid test cards, visit: https://stripe.com/docs/testing."
)
# Stripe's least charge in US dollars.
LEAST_CHARGE = Decimal("0.50")

# What each step is called in the transcript.
STEP_WORDS = {
    "payment-card-number": "the card number",
    "expiration-date": "the expiration date",
    "security-code": "the security code",
    "postal-code": "the postal code",
    "payment-processing": "wait while the card is charged",
}


@dataclass(frozen=True)
class Variant:
    """One way Twilio may post a <Pay> result where its pages leave the shape open."""

    reference: str  # the prefix of PaymentConfirmationCode: "ch_" (a Charge) or "pi_" (a PaymentIntent)
    mask: str  # how the card number is masked: "x", "*" or "dashed"
    every_field: bool  # False: only what the result cannot go without
    about: str


VARIANTS = {
    "charge": Variant("ch_", "x", True, "ch_ reference, xxxxxxxxxxxx4242, every field"),
    "intent": Variant("pi_", "*", True, "pi_ reference, ************4242, every field"),
    "dashed": Variant("ch_", "dashed", True, "ch_ reference, xxxx-xxxx-xxxx-4242, every field"),
    "sparse": Variant(
        "pi_", "x", False, "only what the result cannot go without: the token, no card type, number or date"
    ),
}
DEFAULT_VARIANT = "charge"


@dataclass(frozen=True)
class Charged:
    """What the connector did with the card, and why, in words."""

    result: str  # Twilio's Result
    note: str
    pay_error_code: str = ""
    payment_error: str = ""
    connector_error: str = ""


def luhn(number: str) -> bool:
    """The Luhn check every card number passes: 4242424242424242 does, 4242424242424241 does not."""
    if not number.isdigit():
        return False
    total = 0
    for index, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def typed_for(card: str, *, today: date) -> dict[str, str]:
    """What a caller types at each <Pay> step to pay with this card: the number then #, an expiration date two
    years ahead, a security code of the card type's length, a postal code (call --card)."""
    return {
        "payment-card-number": f"{card}#",
        "expiration-date": f"12{(today.year + 2) % 100:02d}",
        "security-code": "1234" if card_type(card) == "amex" else "123",
        "postal-code": "20001",
    }


def card_type(number: str) -> str:
    """The card type <Pay> reports, by the prefixes in its validCardTypes table ("" when none fits)."""
    prefixes = [
        ("amex", ("34", "37"), (15,)),
        ("enroute", ("2014", "2149"), (15,)),
        ("jcb", tuple(str(prefix) for prefix in range(3528, 3590)), range(16, 20)),
        ("diners-club", ("300", "301", "302", "303", "304", "3095", "36", "38", "39"), range(14, 20)),
        ("discover", ("6011", "64", "65"), range(16, 20)),
        ("mastercard", tuple(str(prefix) for prefix in [*range(51, 56), *range(2221, 2721)]), (16,)),
        ("visa", ("4",), range(13, 20)),
        ("maestro", ("50", "56", "57", "58", "6"), range(12, 20)),
    ]
    for name, starts, lengths in prefixes:
        if number.startswith(starts) and len(number) in lengths:
            return name
    return ""


def check(step: str, keys: str, *, pay: Pay, card: str = "", today: date) -> tuple[str, str]:
    """What <Pay> makes of an entry at a step: ("", "") when it takes it, else (errorType, why in words)."""
    if step == "payment-card-number":
        if not keys.isdigit() or not 12 <= len(keys) <= 19:
            return "invalid-card-number", f"{_digits(keys)}: a card number has 12 to 19"
        if not luhn(keys):
            return "invalid-card-number", "the Luhn check fails"
        kind = card_type(keys)
        if kind not in pay.valid_card_types:
            return (
                "invalid-card-type",
                f"a {kind or 'card of no known type'}, not among {' '.join(pay.valid_card_types)}",
            )
        return "", ""
    if step == "expiration-date":
        if not (keys.isdigit() and len(keys) == 4 and 1 <= int(keys[:2]) <= 12):
            return "invalid-date", "not a month and a year, MMYY"
        if (2000 + int(keys[2:]), int(keys[:2])) < (today.year, today.month):
            return "invalid-date", "in the past"
        return "", ""
    if step == "security-code":
        length = 4 if card_type(card) == "amex" else 3
        if not (keys.isdigit() and len(keys) == length):
            return "invalid-security-code", f"{_digits(keys)}: this card's has {length}"
        return "", ""
    if step == "postal-code":
        least = pay.min_postal_code_length or 5
        if not (keys.isdigit() and least <= len(keys) <= 10):
            return "invalid-postal-code", f"{_digits(keys)}: at least {least}"
        return "", ""
    raise ValueError(f"not a card payment step: {step}")


def charge(card: str, pay: Pay) -> Charged:
    """What the Stripe connector in test mode does with the card."""
    if not pay.charge_amount:
        if card not in TEST_CARDS:
            return Charged(
                "payment-connector-error",
                "not one of Stripe's test cards: test mode refuses to tokenize it",
                GATEWAY_REJECTED_CARD,
                LIVE_CARD_IN_TEST_MODE,
                "card_declined",
            )
        return Charged("success", f"no chargeAmount: tokenized as {TEST_CARDS[card].payment_method}, not charged")
    if pay.currency.lower() == "usd" and pay.charge_amount < LEAST_CHARGE:
        return Charged(
            "payment-connector-error",
            f"Stripe charges at least {LEAST_CHARGE} usd",
            GATEWAY_REJECTED_CHARGE,
            "Amount must be at least $0.50 usd",
            "amount_too_small",
        )
    if card == CHARGED:
        return Charged("success", f"Stripe's test card {CHARGED}: charged {pay.charge_amount} {pay.currency}")
    if card == DECLINED:
        return Charged(
            "payment-connector-error",
            f"Stripe's test card {DECLINED}: declined",
            GATEWAY_REJECTED_CARD,
            CARD_DECLINED,
            "card_declined",
        )
    return Charged(
        "payment-connector-error",
        "not one of Stripe's test cards: test mode declines it",
        GATEWAY_REJECTED_CARD,
        LIVE_CARD_IN_TEST_MODE,
        "card_declined",
    )


def masked(card: str, mask: str) -> str:
    """The card number as Twilio posts it: only the last four digits shown."""
    if mask == "dashed":
        hidden = "x" * (len(card) - 4)
        groups = [hidden[index : index + 4] for index in range(0, len(hidden), 4)]
        return "-".join([*groups, card[-4:]])
    return mask * (len(card) - 4) + card[-4:]


def posted(
    *,
    result: str,
    variant: Variant,
    pay: Pay,
    entered: dict[str, str],
    charged: Charged | None = None,
    error: str = "",
    reference_seed: str = "",
) -> dict[str, str]:
    """The fields Twilio adds to its usual ones on the action request: Result, and what else the result carries."""
    fields = {"Result": result}
    card = entered.get("payment-card-number", "")
    if result == "success":
        if pay.charge_amount:
            fields["PaymentConfirmationCode"] = variant.reference + _digest(reference_seed, 24)
            if variant.every_field:
                token = "pm_" if variant.reference == "pi_" else "tok_"
                fields["PaymentToken"] = token + _digest("token" + reference_seed, 24)
        elif pay.token_type == "payment-method" and card in TEST_CARDS:  # noqa: S105 - a <Pay> attribute
            # Twilio's changelog (2024-04-09): the Stripe connector posts the PaymentMethod's id as PaymentToken.
            fields["PaymentToken"] = TEST_CARDS[card].payment_method
        else:
            fields["PaymentToken"] = "tok_" + _digest("token" + reference_seed, 24)
        if variant.every_field:
            fields["ProfileId"] = "cus_" + _digest("profile" + reference_seed, 14)
    elif charged is not None and charged.pay_error_code:
        fields["PayErrorCode"] = charged.pay_error_code
        if variant.every_field:
            fields |= {"PaymentError": charged.payment_error, "ConnectorError": charged.connector_error}
    elif error and variant.every_field:
        # Twilio's example: PaymentError names the step's error when the caller ran out of attempts.
        fields["PaymentError"] = error
    if variant.every_field and card and result in ("success", "payment-connector-error"):
        fields |= {
            "PaymentMethod": "credit-card",
            "PaymentCardType": card_type(card),
            "PaymentCardNumber": masked(card, variant.mask),
            "ExpirationDate": entered.get("expiration-date", ""),
        }
        if "security-code" in entered:
            fields["SecurityCode"] = "*" * len(entered["security-code"])
        if "postal-code" in entered:
            fields["PaymentCardPostalCode"] = entered["postal-code"]
    return fields


def _digest(seed: str, length: int) -> str:
    """Letters and digits made from seed: the same call and <Pay> give the same reference."""
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


def _digits(keys: str) -> str:
    """ "1 digit", "3 digits", "no digits": how many keys an entry holds, in words."""
    return f"{len(keys) or 'no'} digit{'' if len(keys) == 1 else 's'}"
