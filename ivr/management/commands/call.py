from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ivr.simulator import CallFailed, Event, InProcess, OverHttp, Prompt, SimulatedCall, scripted

SHOWN = {"say": "  SAY    {}", "pause": "  PAUSE  {}", "prompt": "  ...    {}", "keys": "  KEYS   {}",
         "silence": "  KEYS   {}", "hangup": "  HANGUP {}"}


class Command(BaseCommand):
    help = "Place a call from the terminal, as Twilio would: in process, or against a server with --url."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:3001 (default: in process)")
        parser.add_argument("--base-url", help="the public URL Twilio signs (default: BASE_URL in process, --url otherwise)")
        parser.add_argument("--from", dest="caller", default="+15551230001", help="the caller ID (default +15551230001)")
        parser.add_argument("--keys", help='a whole call, comma-separated: "#,123456#,3971#,3971#,2,1" ("" is silence)')
        parser.add_argument("--token", help="the auth token to sign with (default: TWILIO_AUTH_TOKEN)")
        parser.add_argument("--verbose", action="store_true", help="show every request and how long it took")

    def handle(self, *args: object, url: str | None, base_url: str | None, caller: str, keys: str | None,
               token: str | None, verbose: bool, **options: object) -> None:
        if not verbose:
            # The server's own log lines would interleave with what the caller hears.
            logging.disable(logging.INFO)
        transport = OverHttp(url) if url else InProcess()
        call = SimulatedCall(
            base_url=(base_url or url or settings.BASE_URL).rstrip("/"),
            auth_token=token or settings.TWILIO_AUTH_TOKEN,
            transport=transport,
            caller=caller,
            on_event=lambda event: self._show(event, verbose),
        )
        where = f"server {url}" if url else "in process"
        self.stdout.write(f"Calling from {caller or '(withheld)'} ({where}). Call {call.call_sid}.")
        answer_prompt = scripted(keys.split(",")) if keys is not None else self._ask
        try:
            call.place(answer_prompt)
        except CallFailed as error:
            raise CommandError(f"the call failed: {error}") from None
        except OSError as error:
            raise CommandError(f"cannot reach {url}: {error}") from None
        self.stdout.write(f"Call ended ({call.ended_by}) after {len(call.answers)} requests.")

    def _show(self, event: Event, verbose: bool) -> None:
        if event.kind == "request":
            if verbose:
                self.stdout.write(f"  HTTP   {event.text}")
            return
        self.stdout.write(SHOWN.get(event.kind, "  {}").format(event.text))

    def _ask(self, prompt: Prompt) -> str | None:
        """Interactive keys: a line of keys, an empty line for silence, Ctrl-D or 'h' to hang up."""
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
