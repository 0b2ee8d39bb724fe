"""A phone that behaves like Twilio, for `manage.py call`, the end-to-end tests and the benchmark.

It posts the parameters Twilio posts, signs every request with the auth token
as Twilio does, and follows the TwiML as Twilio documents it:

- <Say> is heard, <Pause> is a pause.
- <Gather> reads keys: finishOnKey (default "#") ends the entry and is not
  sent; numDigits ends it when reached. No keys (silence, or finishOnKey
  alone) sends nothing to action and the next verb runs, unless
  actionOnEmptyResult="true", which posts Digits="".
- <Redirect> is followed; <Hangup>, or running out of verbs, ends the call.
- At the end, the status callback is posted with CallStatus=completed.
"""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

# A call that makes this many requests without asking for keys is looping.
MAX_REQUESTS_WITHOUT_A_PROMPT = 20


class CallFailed(Exception):
    """The server answered something Twilio could not follow."""


@dataclass
class Answer:
    status: int
    body: str
    milliseconds: float


class Transport:
    """Sends one signed POST; signed_url is the URL Twilio would have called."""

    def post(self, signed_url: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        raise NotImplementedError


class InProcess(Transport):
    """Through Django's test client: no server needed."""

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client()

    def post(self, signed_url: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        parts = urlsplit(signed_url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
        started = time.perf_counter()
        response = self.client.post(path, params, secure=parts.scheme == "https", HTTP_HOST=parts.netloc, **extra)
        return Answer(response.status_code, response.content.decode(), (time.perf_counter() - started) * 1000)


class OverHttp(Transport):
    """To a running server, as Fly's proxy would forward Twilio's request to it."""

    def __init__(self, server: str, timeout: float = 15.0) -> None:
        self.server = server.rstrip("/")
        self.timeout = timeout

    def post(self, signed_url: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        parts = urlsplit(signed_url)
        target = self.server + parts.path + (f"?{parts.query}" if parts.query else "")
        request = urllib.request.Request(
            target,
            data=urlencode(params).encode(),
            method="POST",
            # The public host and scheme, as the proxy passes them on.
            headers={"Host": parts.netloc, "X-Forwarded-Proto": parts.scheme,
                     "Content-Type": "application/x-www-form-urlencoded", **headers},
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read().decode(errors="replace")
        return Answer(status, body, (time.perf_counter() - started) * 1000)


@dataclass
class Event:
    """One line of the transcript."""

    kind: str  # say, pause, prompt, keys, silence, request, hangup, end
    text: str


@dataclass
class Prompt:
    """A <Gather> waiting for keys, as the caller meets it."""

    num_digits: int | None
    finish_on_key: str
    timeout: int
    heard: str  # what the caller heard inside the <Gather>


@dataclass
class SimulatedCall:
    """One phone call. keys(prompt) returns what the caller presses, "" for silence, None to hang up."""

    base_url: str
    auth_token: str
    transport: Transport
    caller: str = "+15551230001"
    called: str = "+15550000000"
    call_sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))
    on_event: Callable[[Event], None] = lambda event: None
    transcript: list[Event] = field(default_factory=list)
    answers: list[tuple[str, Answer]] = field(default_factory=list)
    ended_by: str = ""

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.call_sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.caller,
            "To": self.called,
            "Caller": self.caller,
            "Called": self.called,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            **extra,
        }

    def post(self, url: str, params: dict[str, str]) -> Answer:
        url = url if "://" in url else self.base_url + url
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        answer = self.transport.post(url, params, {"X-Twilio-Signature": signature})
        self.answers.append((url, answer))
        self._note("request", f"POST {urlsplit(url).path} -> {answer.status} ({answer.milliseconds:.0f} ms)")
        return answer

    def place(self, keys: Callable[[Prompt], str | None]) -> list[Event]:
        """Place the call and follow the TwiML until it ends; returns the transcript."""
        document_url = self.base_url + "/twilio/voice"
        answer = self.post(document_url, self.params())
        requests_since_prompt = 0
        try:
            while answer is not None:
                if answer.status != 200:
                    raise CallFailed(f"HTTP {answer.status} from {document_url}")
                requests_since_prompt += 1
                if requests_since_prompt > MAX_REQUESTS_WITHOUT_A_PROMPT:
                    raise CallFailed("the call loops without asking for anything")
                next_request = None
                for verb in self._verbs(answer.body):
                    if verb.tag == "Say":
                        self._note("say", (verb.text or "").strip())
                    elif verb.tag == "Pause":
                        self._note("pause", f"{verb.get('length', '1')} s")
                    elif verb.tag == "Gather":
                        requests_since_prompt = 0
                        outcome = self._gather(verb, document_url, keys)
                        if outcome == "hangup":
                            self.ended_by = "caller"
                            return self.transcript
                        if outcome is not None:
                            next_request = outcome
                            break
                    elif verb.tag == "Redirect":
                        next_request = ((verb.text or "").strip() or document_url, self.params())
                        break
                    elif verb.tag == "Hangup":
                        self._note("hangup", "the line goes quiet")
                        self.ended_by = "server"
                        return self.transcript
                    else:
                        self._note("say", f"[unsupported verb <{verb.tag}>]")
                if next_request is None:
                    # Out of verbs: Twilio ends the call.
                    self._note("hangup", "no more verbs: the call ends")
                    self.ended_by = "end of document"
                    return self.transcript
                document_url, params = next_request
                answer = self.post(document_url, params)
        finally:
            self.post(self.base_url + "/twilio/status", self.params(CallStatus="completed", CallDuration="60"))
        return self.transcript

    def _verbs(self, body: str) -> Iterator[ET.Element]:
        try:
            root = ET.fromstring(body)
        except ET.ParseError as error:
            raise CallFailed(f"not TwiML: {error}") from None
        if root.tag != "Response":
            raise CallFailed(f"not TwiML: the root is <{root.tag}>")
        return iter(list(root))

    def _gather(self, gather: ET.Element, document_url: str, keys: Callable[[Prompt], str | None]):
        heard = []
        for child in gather:
            if child.tag == "Say":
                heard.append((child.text or "").strip())
                self._note("say", heard[-1])
            elif child.tag == "Pause":
                self._note("pause", f"{child.get('length', '1')} s")
        num_digits = int(gather.get("numDigits")) if gather.get("numDigits") else None
        finish_on_key = gather.get("finishOnKey", "#")
        prompt = Prompt(num_digits, finish_on_key, int(gather.get("timeout", "5")), " ".join(heard))
        self._note("prompt", f"keys? numDigits={num_digits or 'any'} finishOnKey={finish_on_key or 'none'}")
        pressed = keys(prompt)
        if pressed is None:
            self._note("hangup", "the caller hangs up")
            return "hangup"
        collected = ""
        for key in pressed:
            if finish_on_key and key == finish_on_key:
                break
            collected += key
            if num_digits and len(collected) >= num_digits:
                break
        if not collected and gather.get("actionOnEmptyResult") != "true":
            self._note("silence", "(no keys)" if not pressed else f"(only {pressed!r}: nothing is sent)")
            return None
        self._note("keys", collected)
        return (gather.get("action") or document_url, self.params(Digits=collected))

    def _note(self, kind: str, text: str) -> None:
        event = Event(kind, text)
        self.transcript.append(event)
        self.on_event(event)


def scripted(keys: list[str]) -> Callable[[Prompt], str | None]:
    """Answer prompts from a list ("" is silence); hang up when it runs out."""
    remaining = iter(keys)
    return lambda prompt: next(remaining, None)
