"""TwiML read as Twilio documents it, not as our server happens to write it today. Strict.

read(body, url) turns a document into its verbs, each read when the call
reaches it; phone.call acts them out. What Twilio documents, and this reads:

- <Say> is heard, SSML children included (<break>, <prosody>, <say-as>,
  <sub>, ...), in its language ("en-US" when absent) and voice; <Pause> is a
  pause (1 s unless length says otherwise); <Play> is a recording of unknown
  length. loop repeats them.
- <Gather>: action defaults to the document's own URL, method POST, timeout
  5 s, finishOnKey "#" ("" disables it), numDigits unlimited,
  actionOnEmptyResult false. Its nested <Say>, <Pause> and <Play> play while
  it listens. read_entry() is how it takes keys: numDigits reached, or
  finishOnKey pressed, ends the entry; Digits never include finishOnKey, and
  keys typed after the entry ended are lost.
- <Redirect> goes to its URL (relative to the document's); <Hangup> and
  <Reject> end the call; running out of verbs ends it too.
- <Pay> (twilio.com/docs/voice/twiml/pay and /pay/prompt): its attributes with
  Twilio's defaults (input dtmf, paymentMethod credit-card, timeout 5 s,
  maxAttempts 1, securityCode and postalCode true, paymentConnector Default,
  currency usd, language en-US, validCardTypes "visa mastercard amex"), and its
  <Prompt>s by for, errorType, attempt and cardType, each holding <Say>,
  <Play> or <Pause>. phone.call and phone.payment act it out.
- Any other verb (<Dial>, <Record>, ...) is not simulated: Unsupported, which
  the call skips and names in its transcript.

Strict: a document that is not TwiML, an attribute Twilio could not read, or a
method other than POST (our server takes POST only) raises CallFailed. So does
a <Pay> with a value Twilio's pages do not list (input other than dtmf, an
unknown paymentMethod or language, maxAttempts outside 1-3, a chargeAmount
that is not a decimal from 0 to 1,000,000, a <Prompt for> or errorType it does
not name), with anything nested but <Prompt> (and the Generic connector's
<Parameter>), or without an action: Twilio would then post to the document's
own URL, which our server never means. An attribute <Pay> does not document at
all is ignored, as Twilio ignores it with a schema warning (12200), and named
in the transcript. How long speech, pauses and breaks take comes from
phone.clock.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urljoin, urlsplit

from phone import clock


class CallFailed(Exception):
    """The server answered something Twilio could not follow (not TwiML, a loop, a GET)."""


@dataclass(frozen=True)
class Audio:
    """One <Say>, <Pause> or <Play> as the caller hears it."""

    kind: str  # "say", "pause", "play", or "twilio": <Pay>'s own words, which our TwiML does not hold
    text: str  # say: the words, SSML rendered (a break is a space); play: the URL; pause: ""; twilio: what it asks
    seconds: float  # how long it plays, loops included
    words: int = 0  # words spoken, loops included
    language: str = ""  # say: its language attribute ("en-US" when absent, Twilio's default)
    voice: str = ""  # say: its voice attribute ("" when absent)
    loop: int = 1  # times played; 0 is Twilio's "until the call ends", counted as once
    shown: str = ""  # say: the text with SSML breaks marked, e.g. "4, [700 ms] 7"
    nested: bool = False  # inside a <Gather>: keys typed while it plays answer the <Gather>


@dataclass(frozen=True)
class Gather:
    """A <Gather> with Twilio's defaults filled in and its nested audio read."""

    num_digits: int | None  # None: no numDigits, any number of keys
    finish_on_key: str  # "" when turned off
    timeout: int  # seconds
    action: str  # the URL an entry is posted to (absolute)
    action_on_empty_result: bool
    audio: list[Audio] = field(default_factory=list)  # its nested <Say>s, <Pause>s and <Play>s, in order
    skipped: list[str] = field(default_factory=list)  # the tags of other verbs nested in it: not simulated


@dataclass(frozen=True)
class Redirect:
    url: str  # absolute


@dataclass(frozen=True)
class Hangup:
    """<Hangup>, or <Reject> (rejected=True): the call ends."""

    rejected: bool = False


@dataclass(frozen=True)
class Unsupported:
    """A verb the simulator does not act out (<Dial>, <Record>, ...)."""

    tag: str


# <Pay>, as twilio.com/docs/voice/twiml/pay documents it ---------------------------------------

PAY_DEFAULTS = {
    "input": "dtmf",
    "paymentMethod": "credit-card",
    "timeout": "5",
    "maxAttempts": "1",  # the attribute table says "none"; the text under it, "the default of 1"
    "securityCode": "true",
    "postalCode": "true",
    "paymentConnector": "Default",
    "tokenType": "reusable",
    "currency": "usd",
    "language": "en-US",
    "validCardTypes": "visa mastercard amex",
}
PAY_ATTRIBUTES = frozenset(
    {
        *PAY_DEFAULTS,
        "action",
        "statusCallback",
        "statusCallbackMethod",
        "bankAccountType",
        "minPostalCodeLength",
        "chargeAmount",
        "description",
    }
)
# The languages <Pay> speaks its own card prompts in (its "language" section), compared without case.
PAY_LANGUAGES = ("en-AU", "en-CA", "en-GB", "en-IN", "en-US", "es-ES", "es-MX", "fr-CA", "fr-FR", "de-DE", "it-IT")
CARD_TYPES = ("visa", "mastercard", "amex", "maestro", "discover", "optima", "jcb", "diners-club", "enroute")
TOKEN_TYPES = ("one-time", "reusable", "payment-method")
BANK_ACCOUNT_TYPES = ("consumer-checking", "consumer-savings", "commercial-checking")
# <Prompt for=...>: the seven payment steps of twilio.com/docs/voice/twiml/pay/prompt.
PROMPT_FOR = (
    "payment-card-number",
    "expiration-date",
    "security-code",
    "postal-code",
    "bank-routing-number",
    "bank-account-number",
    "payment-processing",
)
# <Prompt errorType=...>: its table, and invalid-postal-code, which the description under it adds.
PROMPT_ERROR_TYPES = (
    "timeout",
    "invalid-card-number",
    "invalid-card-type",
    "invalid-date",
    "invalid-security-code",
    "invalid-postal-code",
    "invalid-bank-routing-number",
    "invalid-bank-account-number",
    "input-matching-failed",
)
PROMPT_ATTRIBUTES = frozenset({"for", "errorType", "attempt", "cardType", "requireMatchingInputs"})
CHARGE_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


@dataclass(frozen=True)
class PayPrompt:
    """One <Prompt> of a <Pay>: what the caller hears at one payment step, for some errors, attempts or cards."""

    for_: str
    error_types: frozenset[str] = frozenset()  # empty: the step's prompt before any error
    attempts: frozenset[int] = frozenset()  # empty: any attempt
    card_types: frozenset[str] = frozenset()  # empty: any card
    audio: tuple[Audio, ...] = ()


@dataclass(frozen=True)
class Pay:
    """A <Pay> with Twilio's defaults filled in and its <Prompt>s read."""

    action: str  # absolute
    charge_amount: Decimal  # 0: tokenize, not charge (chargeAmount 0 or absent)
    currency: str
    connector: str
    language: str
    max_attempts: int  # 1, 2 or 3: tries at each payment step
    timeout: int  # seconds <Pay> waits for another key before it checks an entry
    security_code: bool
    postal_code: str  # "true", "false", or the postal code itself (then not asked)
    min_postal_code_length: int | None
    valid_card_types: tuple[str, ...]
    token_type: str
    description: str = ""
    status_callback: str = ""
    prompts: tuple[PayPrompt, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()  # <Parameter>s, for a Generic Pay Connector
    ignored: tuple[str, ...] = ()  # attributes Twilio's <Pay> and <Prompt> pages do not name

    @property
    def steps(self) -> list[str]:
        """The payment steps the caller is asked for, in order."""
        asked = ["payment-card-number", "expiration-date"]
        if self.security_code:
            asked.append("security-code")
        if self.postal_code.lower() == "true":
            asked.append("postal-code")
        return asked

    def prompt(self, for_: str, *, attempt: int, error: str = "", card_type: str = "") -> PayPrompt | None:
        """The <Prompt> the caller hears at a step; None: <Pay> says its own words.

        After an error, the <Prompt> naming that errorType, else one naming the attempt
        (Twilio's example: attempt="2 3" is heard when the first try failed); before
        any error, one naming the attempt, else the step's plain one. A <Prompt> that
        names an attempt or card types fits only those, and goes before one that names
        neither; among equals, the first in the document wins. (Twilio's pages show
        these attributes but not how it picks among <Prompt>s that all fit.)
        """
        fitting = [
            prompt
            for prompt in self.prompts
            if prompt.for_ == for_
            and (not prompt.attempts or attempt in prompt.attempts)
            and (not prompt.card_types or card_type in prompt.card_types)
        ]
        if error:
            ranked = _most_specific(prompt for prompt in fitting if error in prompt.error_types)
            ranked += _most_specific(prompt for prompt in fitting if not prompt.error_types and prompt.attempts)
        else:
            ranked = _most_specific(prompt for prompt in fitting if not prompt.error_types)
        return ranked[0] if ranked else None


def _most_specific(prompts: Iterable[PayPrompt]) -> list[PayPrompt]:
    """Prompts naming an attempt or card types before those that do not; otherwise in document order."""
    return sorted(prompts, key=lambda prompt: -(bool(prompt.attempts) + bool(prompt.card_types)))


Verb = Audio | Gather | Redirect | Hangup | Pay | Unsupported


def read(body: str, document_url: str) -> Iterator[Verb]:
    """The document's verbs, in order.

    The document is parsed at once; each verb is read when the call reaches it, so a verb after the
    one that ends the call's stay in the document (an answered <Gather>, a <Redirect>) is never read,
    nor refused.
    """
    try:
        root = ET.fromstring(body)
    except ET.ParseError as error:
        raise CallFailed(f"not TwiML: {error}") from None
    if root.tag != "Response":
        raise CallFailed(f"not TwiML: the root is <{root.tag}>")
    return (_verb(element, document_url) for element in list(root))


def read_entry(keys: str, *, finish_on_key: str, num_digits: int | None) -> tuple[str, str, str]:
    """The keys as a <Gather> takes them: (Digits, the finishOnKey that ended them or "", keys typed after)."""
    collected = ""
    for index, key in enumerate(keys):
        if finish_on_key and key == finish_on_key:
            return collected, key, keys[index + 1 :]
        collected += key
        if num_digits and len(collected) >= num_digits:
            return collected, "", keys[index + 1 :]
    return collected, "", ""


def _verb(element: ET.Element, document_url: str) -> Verb:
    if element.tag in ("Say", "Pause", "Play"):
        return _audio(element, nested=False)
    if element.tag == "Gather":
        return _gather(element, document_url)
    if element.tag == "Redirect":
        _posts_only(element)
        return Redirect(urljoin(document_url, (element.text or "").strip()))
    if element.tag in ("Hangup", "Reject"):
        return Hangup(rejected=element.tag == "Reject")
    if element.tag == "Pay":
        return _pay(element, document_url)
    return Unsupported(element.tag)


def _gather(element: ET.Element, document_url: str) -> Gather:
    _posts_only(element)
    try:
        num_digits = int(element.get("numDigits", "0")) or None
        timeout = int(element.get("timeout", "5"))
    except ValueError as error:
        raise CallFailed(f"a <Gather> Twilio cannot read: {error}") from None
    nested, skipped = [], []
    for child in element:
        if child.tag in ("Say", "Pause", "Play"):
            nested.append(_audio(child, nested=True))
        else:
            skipped.append(child.tag)
    return Gather(
        num_digits=num_digits,
        finish_on_key=element.get("finishOnKey", "#"),
        timeout=timeout,
        action=urljoin(document_url, element.get("action") or document_url),
        action_on_empty_result=element.get("actionOnEmptyResult", "false").lower() == "true",
        audio=nested,
        skipped=skipped,
    )


def _refused(why: str) -> CallFailed:
    return CallFailed(f"a <Pay> Twilio would refuse: {why}")


def _pay(element: ET.Element, document_url: str) -> Pay:
    """A <Pay>, read as strictly as Twilio's <Pay> and <Prompt> pages describe it."""
    value = {**PAY_DEFAULTS, **element.attrib}
    if not element.get("action"):
        raise _refused(
            f"no action: Twilio would post its result to the document's own URL, {urlsplit(document_url).path}"
        )
    if value["input"] != "dtmf":
        raise _refused(f"input={value['input']!r}: <Pay> takes dtmf only")
    if value["paymentMethod"] not in ("credit-card", "ach-debit"):
        raise _refused(f"paymentMethod={value['paymentMethod']!r}: credit-card or ach-debit")
    if value["paymentMethod"] == "ach-debit":
        raise CallFailed("<Pay paymentMethod='ach-debit'>: the simulator acts out card payments only")
    if "bankAccountType" in element.attrib:
        # Twilio's error 64017: a bank account type with a card payment.
        raise _refused("bankAccountType is for ach-debit, not credit-card (error 64017)")
    if "method" in element.attrib:
        _posts_only(element)
    if element.get("statusCallbackMethod", "POST").upper() not in ("GET", "POST"):
        raise _refused(f"statusCallbackMethod={element.get('statusCallbackMethod')!r}: GET or POST")
    max_attempts = _whole(value["maxAttempts"], "maxAttempts", allowed=range(1, 4))
    timeout = _whole(value["timeout"], "timeout")
    minimum = element.get("minPostalCodeLength")
    min_postal = _whole(minimum, "minPostalCodeLength") if minimum is not None else None
    if value["securityCode"].lower() not in ("true", "false"):
        raise _refused(f"securityCode={value['securityCode']!r}: true or false")
    if not value["postalCode"].strip():
        raise _refused("postalCode='': true, false or the postal code")
    amount = element.get("chargeAmount", "0").strip()
    charge = Decimal(amount) if CHARGE_AMOUNT.fullmatch(amount) else None
    if charge is None or charge > 1_000_000:
        # Twilio would post Result=validation-error; refused here, so that the TwiML is put right.
        raise _refused(f"chargeAmount={amount!r}: a decimal from 0 to 1,000,000")
    if not re.fullmatch(r"[A-Za-z]{3}", value["currency"]):
        raise _refused(f"currency={value['currency']!r}: a 3-letter currency code")
    language = next((known for known in PAY_LANGUAGES if known.lower() == value["language"].lower()), None)
    if language is None:
        raise _refused(f"language={value['language']!r}: <Pay> speaks {', '.join(PAY_LANGUAGES)}")
    if value["tokenType"] not in TOKEN_TYPES:
        raise _refused(f"tokenType={value['tokenType']!r}: one of {', '.join(TOKEN_TYPES)}")
    card_types = tuple(value["validCardTypes"].split())
    if not card_types or any(card not in CARD_TYPES for card in card_types):
        raise _refused(f"validCardTypes={value['validCardTypes']!r}: among {' '.join(CARD_TYPES)}")
    prompts, parameters = [], []
    for child in element:
        if child.tag == "Prompt":
            prompts.append(_pay_prompt(child))
        elif child.tag == "Parameter" and child.get("name"):
            parameters.append((child.get("name", ""), child.get("value", "")))
        else:
            raise _refused(f"<{child.tag}> inside <Pay>: only <Prompt> (and <Parameter name=...>)")
        if (child.tail or "").strip():
            raise _refused(f"text inside <Pay>: {child.tail.strip()!r}")
    if (element.text or "").strip():
        raise _refused(f"text inside <Pay>: {element.text.strip()!r}")
    status_callback = element.get("statusCallback", "")
    ignored = [f"<Pay {name}>" for name in element.attrib if name not in PAY_ATTRIBUTES]
    ignored += [
        f"<Prompt {name}>"
        for child in element
        if child.tag == "Prompt"
        for name in child.attrib
        if name not in PROMPT_ATTRIBUTES
    ]
    return Pay(
        action=urljoin(document_url, element.get("action", "")),
        charge_amount=charge,
        currency=value["currency"],
        connector=value["paymentConnector"],
        language=language,
        max_attempts=max_attempts,
        timeout=timeout,
        security_code=value["securityCode"].lower() == "true",
        postal_code=value["postalCode"],
        min_postal_code_length=min_postal,
        valid_card_types=card_types,
        token_type=value["tokenType"],
        description=element.get("description", ""),
        status_callback=urljoin(document_url, status_callback) if status_callback else "",
        prompts=tuple(prompts),
        parameters=tuple(parameters),
        ignored=tuple(dict.fromkeys(ignored)),
    )


def _pay_prompt(element: ET.Element) -> PayPrompt:
    for_ = element.get("for", "")
    if for_ not in PROMPT_FOR:
        raise _refused(f"<Prompt for={for_!r}>: one of {', '.join(PROMPT_FOR)}")
    error_types = element.get("errorType", "").split()
    if any(error not in PROMPT_ERROR_TYPES for error in error_types):
        raise _refused(f"<Prompt errorType={element.get('errorType')!r}>: among {' '.join(PROMPT_ERROR_TYPES)}")
    card_types = element.get("cardType", "").split()
    if any(card not in CARD_TYPES for card in card_types):
        raise _refused(f"<Prompt cardType={element.get('cardType')!r}>: among {' '.join(CARD_TYPES)}")
    attempts = element.get("attempt", "").split()
    if any(not attempt.isdigit() or not 1 <= int(attempt) <= 10 for attempt in attempts):
        raise _refused(f"<Prompt attempt={element.get('attempt')!r}>: whole numbers from 1 to 10")
    matching = element.get("requireMatchingInputs", "false").lower()
    if matching not in ("true", "false") or (matching == "true" and not for_.startswith("bank-")):
        raise _refused(f"<Prompt requireMatchingInputs={element.get('requireMatchingInputs')!r}>: for bank steps only")
    audio = []
    for child in element:
        if child.tag not in ("Say", "Play", "Pause"):
            raise _refused(f"<{child.tag}> inside <Prompt>: only <Say>, <Play> and <Pause>")
        audio.append(_audio(child, nested=True))
    if not audio:
        raise _refused(f"<Prompt for={for_!r}> with nothing in it: nest a <Say> or a <Play>")
    return PayPrompt(
        for_=for_,
        error_types=frozenset(error_types),
        attempts=frozenset(int(attempt) for attempt in attempts),
        card_types=frozenset(card_types),
        audio=tuple(audio),
    )


def _whole(text: str, name: str, *, allowed: range | None = None) -> int:
    """A positive whole number attribute (within allowed), or refuse."""
    if not text.strip().isdigit() or int(text) < 1 or (allowed is not None and int(text) not in allowed):
        limits = f"{allowed.start} to {allowed.stop - 1}" if allowed is not None else "a positive whole number"
        raise _refused(f"{name}={text!r}: {limits}")
    return int(text)


def _posts_only(verb: ET.Element) -> None:
    # Our server takes POST only; a GET here is a bug the caller would meet as Twilio's error message.
    if verb.get("method", "POST").upper() != "POST":
        raise CallFailed(f"<{verb.tag} method={verb.get('method')!r}>: the simulator (and our server) take POST only")


def _audio(verb: ET.Element, *, nested: bool) -> Audio:
    """A <Say>, <Pause> or <Play> as the caller hears it, timed on the virtual clock."""
    try:
        length, loop = float(verb.get("length", "1")), int(verb.get("loop", "1"))
    except ValueError as error:
        raise CallFailed(f"a <{verb.tag}> Twilio cannot read: {error}") from None
    if verb.tag == "Pause":
        return Audio("pause", "", length, nested=nested)
    times = max(loop, 1)
    if verb.tag == "Play":
        # The length of a recording is unknown here: it counts no time.
        return Audio("play", (verb.text or "").strip(), 0.0, loop=loop, nested=nested)
    speech = _Speech()
    speech.read(verb, rate=1.0)
    text = speech.text()
    return Audio(
        "say",
        text,
        round(speech.seconds * times, 2),
        clock.words(text) * times,
        language=verb.get("language", "en-US"),
        voice=verb.get("voice", ""),
        loop=loop,
        shown=speech.text(marked=True),
        nested=nested,
    )


class _Speech:
    """A <Say> and its SSML children, read as the caller hears them: text, breaks and time."""

    def __init__(self) -> None:
        self.pieces: list[tuple[str, str]] = []  # (plain, marked)
        self.seconds = 0.0

    def read(self, element: ET.Element, rate: float) -> None:
        # itertext-style: an element's text, then each child, then the text after it (its tail).
        self.said(element.text, rate)
        for child in element:
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "break":
                seconds = _break_seconds(child)
                self.seconds += seconds
                self.pieces.append((" ", f" [{seconds * 1000:.0f} ms] "))
            elif tag == "sub":
                # <sub alias="..."> is said as its alias.
                self.said(" " + child.get("alias", "".join(child.itertext())) + " ", rate)
            else:
                # Every SSML element is its own run of words: <say-as>4 7</say-as> does not run into the next word.
                self.pieces.append((" ", " "))
                self.read(child, rate * _prosody_rate(child.get("rate")) if tag == "prosody" else rate)
                self.pieces.append((" ", " "))
            self.said(child.tail, rate)

    def said(self, text: str | None, rate: float) -> None:
        if text:
            self.pieces.append((text, text))
            self.seconds += clock.words(text) / clock.WORDS_PER_SECOND / rate

    def text(self, *, marked: bool = False) -> str:
        joined = " ".join("".join(piece[marked] for piece in self.pieces).split())
        # Spaces that SSML elements leave before punctuation: "is 4 7 ." reads "is 4 7."
        return re.sub(r"\s+([,.;:!?])", r"\1", joined)


def _break_seconds(element: ET.Element) -> float:
    time_ = element.get("time")
    if time_:
        match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s)\s*", time_)
        if not match:
            raise CallFailed(f"<break time={time_!r}>: Twilio takes e.g. 700ms or 2s")
        return float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    return clock.BREAK_SECONDS.get(element.get("strength", "medium"), clock.BREAK_SECONDS["medium"])


def _prosody_rate(rate: str | None) -> float:
    if not rate:
        return 1.0
    if rate.endswith("%"):
        return max(float(rate[:-1]) / 100, 0.2)
    return clock.PROSODY_RATES.get(rate, 1.0)
