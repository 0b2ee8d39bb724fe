"""`manage.py call`: a call placed from the terminal as Twilio would place it (README, "Call it from your terminal")."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.errors import AccountsError
from phone import payment, processor
from phone.call import (
    DEPOSIT_PATH,
    MOBILE_STIR,
    POUND_BEHAVIOURS,
    VOICE_PATH,
    Event,
    KeysCallback,
    Press,
    Prompt,
    SimulatedCall,
    scripted,
)
from phone.transport import NO_ANSWER_ERRORS, InProcess, OverHttp
from phone.twiml import CallFailed

SHOWN = {
    "pause": "  PAUSE  {}",
    "play": "  PLAY   {}",
    "prompt": "  ...    {}",
    "lost": "  LOST   {}",
    "error": "  ERROR  {}",
    "hangup": "  HANGUP {}",
    "unsupported": "  ??     {}",
    "pay": "  PAY    {}",
}
# The deposit line is a number of its own; the members' line is the simulator's usual +12025000000.
DEPOSIT_NUMBER = "+12025000100"
STIR_VALUES = (
    "TN-Validation-Passed-A",
    "TN-Validation-Passed-B",
    "TN-Validation-Passed-C",
    "TN-Validation-Failed-A",
    "TN-Validation-Failed-B",
    "TN-Validation-Failed-C",
    "No-TN-Validation",
)


def say_line(language: str, voice: str, text: str) -> str:
    return f"  SAY    [{' '.join(part for part in (language, voice) if part)}] {text}"


def counted(number: int, one: str, many: str) -> str:
    """A count and its noun: "1 entry", "2 entries"."""
    return f"{number} {one if number == 1 else many}"


PHONE_KEYS = re.compile(r"\^?[0-9*#]*")


def parse_keys(keys: str) -> list[str | Press]:
    """--keys: one item a prompt; "" is silence, "^3971" types 3971 at once, through any notices.

    Only the keys a phone has: Twilio never posts a letter, so the simulator does not either."""
    items = keys.split(",")
    wrong = [item for item in items if not PHONE_KEYS.fullmatch(item.replace(" ", ""))]
    if wrong:
        raise CommandError(
            f"--keys: a phone has 0-9, * and # only, not {', '.join(repr(item) for item in wrong)} "
            "(the call ends when the keys run out)"
        )
    items = [item.replace(" ", "") for item in items]
    return [Press.at_once(item[1:]) if item.startswith("^") else item for item in items]


class Command(BaseCommand):
    help = "Place a call from the terminal, as Twilio would: in process, or against a server with --url."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:3001 (default: in process)")
        parser.add_argument(
            "--base-url", help="the public URL Twilio signs (default: BASE_URL in process, --url otherwise)"
        )
        parser.add_argument(
            "--from",
            dest="caller",
            default="+12026230001",
            help='the caller ID, sent as is (default +12026230001; "anonymous" is a withheld number)',
        )
        parser.add_argument(
            "--keys",
            help='a whole call, comma-separated: "#,1,123456,3971,3971,2,1" ("" is silence, '
            '"^3971" types at once, through any notices); at <Pay>, one item a step: "4242424242424242#,1230,123,20001"',
        )
        parser.add_argument(
            "--token",
            help="the auth token to sign with (default: TWILIO_AUTH_TOKEN; with --deposit, TWILIO_DEPOSIT_AUTH_TOKEN)",
        )
        parser.add_argument(
            "--deposit",
            action="store_true",
            help=f"call the deposit line ({DEPOSIT_PATH}) instead of {VOICE_PATH}: <Pay> is acted out with "
            f"Stripe's test cards ({payment.CHARGED} is charged, {payment.DECLINED} declined, * interrupts)",
        )
        parser.add_argument(
            "--card",
            metavar="NUMBER",
            help="with --deposit: at <Pay>, type this card (its number then #, an expiration date two years "
            "ahead, a security code, a postal code), so that --keys holds only the deposit line's own prompts: "
            f'--card {payment.DECLINED} --keys "123456,1,25#,1"',
        )
        parser.add_argument(
            "--pay-variant",
            choices=tuple(payment.VARIANTS),
            default=payment.DEFAULT_VARIANT,
            help="how Twilio posts <Pay>'s result where its docs leave it open: "
            + "; ".join(f"{name}: {variant.about}" for name, variant in payment.VARIANTS.items())
            + f" (default {payment.DEFAULT_VARIANT})",
        )
        parser.add_argument(
            "--then",
            choices=tuple(processor.MODES),
            default="",
            help="in process, with no STRIPE_SECRET_KEY: what the test processor (Stripe's stand-in) does with "
            "the card: "
            + "; ".join(f"{name}: {about}" for name, about in processor.MODES.items())
            + " (default: as Stripe's test cards do). The events it would send are posted to /stripe/events "
            "after the call",
        )
        parser.add_argument(
            "--lang",
            choices=("en", "es", "none"),
            default="en",
            help="answer a language prompt in this language by itself; none: with --keys (default en)",
        )
        parser.add_argument(
            "--stir",
            metavar="VERSTAT",
            default=MOBILE_STIR,
            help=f"SHAKEN/STIR result sent as StirVerstat (default {MOBILE_STIR}, as a mobile "
            f"caller's call carries; none sends none): {', '.join(STIR_VALUES)}",
        )
        parser.add_argument(
            "--pound",
            choices=tuple(POUND_BEHAVIOURS),
            default="b",
            help="what Twilio does with # (the finishOnKey) pressed before any digit: "
            + "; ".join(f"{key}: {words}" for key, words in POUND_BEHAVIOURS.items())
            + "; a and b post only with actionOnEmptyResult (default b)",
        )
        parser.add_argument("--verbose", action="store_true", help="show every request and how long it took")

    def handle(
        self,
        *args: object,
        url: str | None,
        base_url: str | None,
        caller: str,
        keys: str | None,
        token: str | None,
        lang: str,
        stir: str | None,
        pound: str,
        verbose: bool,
        deposit: bool = False,
        pay_variant: str = payment.DEFAULT_VARIANT,
        then: str = "",
        card: str | None = None,
        **options: object,
    ) -> None:
        if card is not None and not (deposit and re.fullmatch(r"[0-9]{12,19}", card)):
            raise CommandError("--card is a card number of 12 to 19 digits, with --deposit")
        if then and (url or settings.STRIPE_SECRET_KEY):
            raise CommandError(
                "--then plays the test processor inside this process: without --url, and with no STRIPE_SECRET_KEY"
            )
        disabled = logging.root.manager.disable
        processor.sent_events()  # what earlier work in this process left unsent is not this call's
        processor.answer_as(then)
        self._then = then
        if not verbose:
            # The server's own log lines (its 403 warnings too) would interleave with what the caller hears.
            logging.disable(logging.WARNING)
        try:
            self._call(
                url,
                (base_url or url or settings.BASE_URL).rstrip("/"),
                caller,
                keys,
                token or (settings.TWILIO_DEPOSIT_AUTH_TOKEN if deposit else settings.TWILIO_AUTH_TOKEN),
                None if lang == "none" else lang,
                None if not stir or stir.lower() == "none" else stir,
                pound,
                verbose,
                deposit,
                pay_variant,
                card,
            )
        finally:
            # In process (tests), logging and the processor are everyone's: give them back as they were.
            logging.disable(disabled)
            processor.answer_as("")

    def _call(
        self,
        url: str | None,
        base_url: str,
        caller: str,
        keys: str | None,
        token: str,
        lang: str | None,
        stir: str | None,
        pound: str,
        verbose: bool,
        deposit: bool,
        pay_variant: str,
        card: str | None = None,
    ) -> None:
        self._verbose, self._prompt_shown = verbose, False
        call = SimulatedCall(
            base_url=base_url,
            auth_token=token,
            transport=OverHttp(url) if url else InProcess(),
            caller=caller,
            on_event=self._show,
            lang=lang,
            stir=stir,
            pound=pound,
            **({"entry_path": DEPOSIT_PATH, "called": DEPOSIT_NUMBER} if deposit else {}),
            pay_variant=pay_variant,
        )
        where = f"server {url}" if url else "in process"
        # --lang is how the caller answers a language prompt, not the call's language: a caller
        # remembered by number is never asked, and hears their account's language.
        answers = f"answers a language prompt with {lang}" if lang else "the keys answer a language prompt"
        verstat = f"StirVerstat {stir}" if stir else "no StirVerstat"
        line = (
            f"the deposit line; <Pay> variant {pay_variant}: {payment.VARIANTS[pay_variant].about}; " if deposit else ""
        )
        self.stdout.write(
            f"Calling {line}from {caller or '(no caller ID)'} ({where}; pound ({pound}): {POUND_BEHAVIOURS[pound]}; "
            f"{verstat}; {answers}). Call {call.call_sid}."
        )
        try:
            answer = scripted(parse_keys(keys)) if keys is not None else self._ask
            call.place(_paying_with(card, answer, today=call.today) if card else answer)
        except CallFailed as error:
            raise CommandError(f"the call failed: {error}") from None
        totals = call.totals
        card = (
            f"{totals.typing_seconds:g} s typing the card, {totals.charging_seconds:g} s for <Pay> to process it, "
            if totals.typing_seconds or totals.charging_seconds
            else ""
        )
        self.stdout.write(
            f"Call ended ({call.ended_by}): {counted(totals.requests, 'request', 'requests')}, "
            f"{counted(totals.entries, 'entry', 'entries')}, {counted(totals.words, 'word', 'words')} heard, "
            f"{totals.wait_seconds:g} s waiting after entries, {card}"
            f"{totals.seconds:.0f} s in all."
        )
        if self._then == "refund-fails":
            self._refund_after_the_call(call)
        self._send_stripe_events(call, base_url)
        problem = self._explain(call, base_url, url, deposit)
        if problem and call.ended_by == "application error":
            raise CommandError(problem)
        if problem:
            self.stderr.write(problem)

    def _refund_after_the_call(self, call: SimulatedCall) -> None:
        """What an operator does with refund_card_deposit --deposit N, the call's deposit being N."""
        from payments import errors, refunds
        from payments.models import CardDeposit

        deposit = CardDeposit.objects.filter(call_sid=call.call_sid, status=CardDeposit.Status.PAID).first()
        if deposit is None:
            self.stdout.write("  REFUND nothing to refund: the call paid nothing")
            return
        try:
            refund = refunds.card_deposit_refund(deposit_id=deposit.pk)
        except (errors.PaymentsError, AccountsError) as refused:
            self.stdout.write(f"  REFUND refused: {type(refused).__name__}")
            return
        self.stdout.write(f"  REFUND card deposit {deposit.pk}: an operator refunds it; Stripe answers {refund.status}")

    def _send_stripe_events(self, call: SimulatedCall, base_url: str) -> None:
        """After the call, the events the test processor sent, as Stripe posts them: each once, signed."""
        for body, signature in processor.sent_events():
            kind = json.loads(body)["type"]
            try:
                answer = call.transport.post_json(f"{base_url}/stripe/events", body, {"Stripe-Signature": signature})
            except NO_ANSWER_ERRORS as error:
                self.stdout.write(f"  STRIPE {kind} -> /stripe/events: no answer ({error}); Stripe sends it again")
                continue
            self.stdout.write(f"  STRIPE {kind} -> /stripe/events: {answer.status} {answer.body.strip()}")

    def _explain(self, call: SimulatedCall, base_url: str, url: str | None, deposit: bool = False) -> str:
        """What went wrong, in words the person at the terminal can act on."""
        if any(failure.status == 403 for failure in call.failures):
            token = "TWILIO_DEPOSIT_AUTH_TOKEN (or TWILIO_AUTH_TOKEN)" if deposit else "TWILIO_AUTH_TOKEN"
            return (
                "the server answered 403: the signature did not match. The server checks X-Twilio-Signature "
                f"against its BASE_URL and TWILIO_AUTH_TOKEN. Check --base-url (now {base_url}: it must be the "
                f"URL the server signs against, its BASE_URL) and --token (it must be the server's {token})."
            )
        if call.failures and all(failure.status is None for failure in call.failures):
            if url and base_url.startswith("http://") and "WRONG_VERSION_NUMBER" in call.failures[0].reason:
                # TLS spoken to a plain-HTTP port: the server redirected the http request to https.
                return (
                    f"{url} redirected the call to https: it runs with DEBUG off (make serve, gunicorn) and takes a "
                    "request for https only when X-Forwarded-Proto says so, as Fly's proxy does. Give --base-url its "
                    "https BASE_URL (e.g. https://127.0.0.1:3001), which sends X-Forwarded-Proto: https; "
                    "make call-served does."
                )
            return f"cannot reach {url or 'the server'}: {call.failures[0].reason}"
        if call.failures:
            return "the call failed: " + "; ".join(f"{failure.url}: {failure.reason}" for failure in call.failures)
        return ""

    def _show(self, event: Event) -> None:
        if event.kind == "request":
            if self._verbose:
                self.stdout.write(f"  HTTP   {event.text}")
            return
        if self._prompt_shown and (event.nested or event.kind == "prompt"):
            # _ask showed the prompt before asking for keys.
            self._prompt_shown = event.kind != "prompt"
            return
        if event.kind in ("say", "twilio"):
            self.stdout.write(say_line(event.language, event.voice, event.shown or event.text))
        elif event.kind == "keys":
            # A lone finishOnKey's note starts with its behaviour, "(b) ...": no second pair of brackets.
            note = event.note if event.note.startswith("(") else f"({event.note})"
            self.stdout.write(f"  KEYS   {event.text}   {note}")
        elif event.kind == "silence":
            self.stdout.write(f"  KEYS   (silence)   ({event.note})")
        elif event.kind == "wait":
            marker = f"   <-- {event.note}" if event.flagged else ""
            self.stdout.write(f"  WAIT   {event.text}{marker}")
        elif event.kind == "lost":
            self.stdout.write(f"  LOST   {event.text}   ({event.note})")
        elif event.kind == "interrupted":
            self.stdout.write(f"  ---    (interrupted) not heard: {event.text}")
        elif event.kind == "charging":
            self.stdout.write(f"  CHARGE {event.text}   ({event.note})")
        elif event.kind == "tokenizing":
            self.stdout.write(f"  TOKEN  {event.text}   ({event.note})")
        else:
            self.stdout.write(SHOWN.get(event.kind, "  {}").format(event.text))

    def _ask(self, prompt: Prompt) -> str | None:
        """Interactive keys: a line of keys, an empty line for silence, Ctrl-D or 'h' to hang up."""
        for audio in prompt.audio:
            if audio.kind in ("say", "twilio"):
                self.stdout.write(say_line(audio.language, audio.voice, audio.shown))
            else:
                self.stdout.write(
                    SHOWN[audio.kind].format(f"{audio.seconds:g} s" if audio.kind == "pause" else audio.text)
                )
        if prompt.pay_step:
            self.stdout.write(
                f"  ...    <Pay> {payment.STEP_WORDS[prompt.pay_step]}? attempt {prompt.attempt} of "
                f"{prompt.max_attempts}; # ends it, or <Pay> waits timeout={prompt.timeout} s; * ends <Pay>"
            )
        else:
            self.stdout.write(
                f"  ...    keys? numDigits={prompt.num_digits or 'any'} "
                f"finishOnKey={prompt.finish_on_key or 'none'} timeout={prompt.timeout} s"
            )
        self._prompt_shown = True
        try:
            line = input("  keys (Enter = silence, h = hang up)> ")
        except EOFError:
            return None
        if line.strip().lower() in ("h", "hangup", "q"):
            return None
        pressed = line.strip().replace(" ", "")
        if any(key not in "0123456789*#" for key in pressed):
            # Twilio never posts a letter: nothing is sent, the prompt is asked again.
            sys.stdout.write("  (a phone has 0-9, * and # only: type those, Enter for silence, h to hang up)\n")
            return self._ask(prompt)
        return pressed


def _paying_with(card: str, keys: KeysCallback, *, today: date) -> KeysCallback:
    """keys for the deposit line's prompts; at <Pay>, what a caller types to pay with card."""
    typed = payment.typed_for(card, today=today)

    def answer(prompt: Prompt) -> str | Press | None:
        return typed.get(prompt.pay_step, "") if prompt.pay_step else keys(prompt)

    return answer
