from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ivr.simulator import (
    MOBILE_STIR,
    POUND_BEHAVIOURS,
    CallFailed,
    Event,
    InProcess,
    OverHttp,
    Press,
    Prompt,
    SimulatedCall,
    scripted,
)

SHOWN = {
    "pause": "  PAUSE  {}",
    "play": "  PLAY   {}",
    "prompt": "  ...    {}",
    "lost": "  LOST   {}",
    "error": "  ERROR  {}",
    "hangup": "  HANGUP {}",
    "unsupported": "  ??     {}",
}
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


def parse_keys(keys: str) -> list[str | Press]:
    """--keys: one item a prompt; "" is silence, "^3971" types 3971 at once, through any notices."""
    return [Press.at_once(item[1:]) if item.startswith("^") else item for item in keys.split(",")]


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
            '"^3971" types at once, through any notices)',
        )
        parser.add_argument("--token", help="the auth token to sign with (default: TWILIO_AUTH_TOKEN)")
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
        **options: object,
    ) -> None:
        disabled = logging.root.manager.disable
        if not verbose:
            # The server's own log lines (its 403 warnings too) would interleave with what the caller hears.
            logging.disable(logging.WARNING)
        try:
            self._call(
                url,
                (base_url or url or settings.BASE_URL).rstrip("/"),
                caller,
                keys,
                token or settings.TWILIO_AUTH_TOKEN,
                None if lang == "none" else lang,
                None if not stir or stir.lower() == "none" else stir,
                pound,
                verbose,
            )
        finally:
            # In process (tests), logging is everyone's: give it back as it was.
            logging.disable(disabled)

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
        )
        where = f"server {url}" if url else "in process"
        # --lang is how the caller answers a language prompt, not the call's language: a caller
        # remembered by number is never asked, and hears their account's language.
        answers = f"answers a language prompt with {lang}" if lang else "the keys answer a language prompt"
        verstat = f"StirVerstat {stir}" if stir else "no StirVerstat"
        self.stdout.write(
            f"Calling from {caller or '(no caller ID)'} ({where}; pound ({pound}): {POUND_BEHAVIOURS[pound]}; "
            f"{verstat}; {answers}). Call {call.call_sid}."
        )
        try:
            call.place(scripted(parse_keys(keys)) if keys is not None else self._ask)
        except CallFailed as error:
            raise CommandError(f"the call failed: {error}") from None
        totals = call.totals
        self.stdout.write(
            f"Call ended ({call.ended_by}): {counted(totals.requests, 'request', 'requests')}, "
            f"{counted(totals.entries, 'entry', 'entries')}, {counted(totals.words, 'word', 'words')} heard, "
            f"{totals.wait_seconds:g} s waiting after entries, "
            f"{totals.seconds:.0f} s in all."
        )
        problem = self._explain(call, base_url, url)
        if problem and call.ended_by == "application error":
            raise CommandError(problem)
        if problem:
            self.stderr.write(problem)

    def _explain(self, call: SimulatedCall, base_url: str, url: str | None) -> str:
        """What went wrong, in words the person at the terminal can act on."""
        if any(failure.status == 403 for failure in call.failures):
            return (
                "the server answered 403: the signature did not match. The server checks X-Twilio-Signature "
                f"against its BASE_URL and TWILIO_AUTH_TOKEN. Check --base-url (now {base_url}: it must be the "
                "URL the server signs against, its BASE_URL) and --token (it must be the server's TWILIO_AUTH_TOKEN)."
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
        if event.kind == "say":
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
        else:
            self.stdout.write(SHOWN.get(event.kind, "  {}").format(event.text))

    def _ask(self, prompt: Prompt) -> str | None:
        """Interactive keys: a line of keys, an empty line for silence, Ctrl-D or 'h' to hang up."""
        for audio in prompt.audio:
            if audio.kind == "say":
                self.stdout.write(say_line(audio.language, audio.voice, audio.shown))
            else:
                self.stdout.write(
                    SHOWN[audio.kind].format(f"{audio.seconds:g} s" if audio.kind == "pause" else audio.text)
                )
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
            sys.stdout.write("  (a phone has 0-9, * and # only; sending them anyway)\n")
        return pressed
