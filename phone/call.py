"""One simulated call: Twilio's side of it and the caller's, from the first webhook to the status callback.

SimulatedCall places a call the way Twilio does. It posts the parameters
Twilio posts, StirVerstat included, signs every request with the auth token
as Twilio does, sends it through a phone.transport Transport, and acts out
each document's verbs as phone.twiml reads them:

- <Say>, <Pause> and <Play> are heard. Keys typed while a <Say> or <Pause>
  nested in the <Gather> plays answer the <Gather> and stop its audio
  (barge-in); keys typed during verbs outside a <Gather> are lost.
- A <Gather> asks the caller for keys (keys(prompt), below). numDigits
  reached, or finishOnKey pressed after a digit, posts at once; any other
  entry is posted when the timeout runs out. Silence posts nothing and the
  next verb runs, unless actionOnEmptyResult="true", which posts Digits=""
  after the timeout.
- A finishOnKey ("#" or "*") pressed before any digit is where Twilio's docs
  disagree, so SimulatedCall.pound plays one of four behaviours (docs/TWILIO.md):
  (a) posted at once as Digits="" with FinishedOnKey="#";
  (b) posted at once as Digits="" with no FinishedOnKey (the default: the
      app learns only that the entry was empty);
  (c) ignored: the <Gather> keeps listening (keys typed after it still
      count) and, at the timeout, treats the entry as silence; the
      caller's wait is counted and flagged;
  (d) the <Gather> ends at once with no request at all, even with
      actionOnEmptyResult, and the next verb runs.
  (a) and (b) post only with actionOnEmptyResult="true"; without it the
  next verb runs at once, as Twilio's older <Gather> page says.
  FinishedOnKey, seen in request logs but in no parameter table, is sent
  under (a) only, on every posted entry: the key when the finishOnKey ended
  it, "" when numDigits or the timeout did.
- StirVerstat is sent on every request: TN-Validation-Passed-A by default,
  as a mobile caller's call carries it; stir=None sends none.
- <Redirect> is followed; <Hangup>, <Reject>, or running out of verbs, ends
  the call. A verb phone.twiml does not act out (<Dial>) is skipped and named.
- <Pay> asks for each payment step in turn (card number, expiration date,
  security code and postal code unless securityCode or postalCode say
  "false"), with the <Prompt> that fits the step, attempt, error and card, or
  its own words in its language when none does. Each step is one keys(prompt)
  answer (Prompt.pay_step names it): # ends it at once, else <Pay> waits its
  timeout for another key; silence waits the timeout. An entry phone.payment
  refuses, or silence, hears the error's <Prompt> and uses an attempt; past
  maxAttempts the result is too-many-failed-attempts. * at any step ends it:
  caller-interrupted-with-star; hanging up posts caller-hung-up. Then the
  connector charges the card (phone.payment: Stripe's test mode) and Twilio
  posts the action URL with the usual parameters and the result's, in the
  shape pay_variant picks (phone.payment.VARIANTS). Typing the card
  (clock.KEY_SECONDS a key) and charging it (clock.CHARGING_SECONDS) count.
  Twilio's pages say nothing of # at <Pay>, nor whether a full expiration
  date ends its step without the timeout: those two are choices, named here.
- A non-2xx answer, or none within 15 s, sends Twilio to the fallback URL
  with ErrorCode and ErrorUrl; when that fails too, Twilio says its own error
  message and hangs up.
- At the end, the status callback is posted with CallStatus=completed.

It never sleeps: phone.clock counts what the call costs the caller, and
every transcript Event carries the totals as they stood when it happened.

Scripts answer prompts through a callback, keys(prompt), which returns what
the caller presses: a string (typed once the prompt has been heard in full),
a Press (typed earlier: Press.at_once("3971") types through the notices),
"" for silence, or None to hang up. scripted() makes one from a list.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from django.conf import settings
from twilio.request_validator import RequestValidator

from myibot import languages
from phone import clock, payment, twiml
from phone.clock import Totals
from phone.transport import NO_ANSWER_ERRORS, TWILIO_TIMEOUT_SECONDS, Answer, Transport, path_and_query
from phone.twiml import Audio, CallFailed, Gather, Hangup, Pay, Redirect, Unsupported

VOICE_PATH = "/twilio/voice"
DEPOSIT_PATH = "/twilio/deposit"  # the deposit line's number: families pay by card through <Pay>
FALLBACK_PATH = "/twilio/fallback"
STATUS_PATH = "/twilio/status"

# A call that makes this many requests without asking for keys is looping.
MAX_REQUESTS_WITHOUT_A_PROMPT = 20

# Twilio's error codes for a failed webhook, sent to the fallback URL as ErrorCode.
ERROR_HTTP = "11200"  # HTTP retrieval failure: the answer was not 2xx
ERROR_NO_ANSWER = "11205"  # HTTP connection failure: no answer, or none in time
# What Twilio says when the fallback URL fails too, before hanging up.
APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."

# What Twilio may do with a finishOnKey pressed before any digit: its docs disagree (docs/TWILIO.md).
POUND_BEHAVIOURS = {
    "a": "posted at once as Digits='' with FinishedOnKey",
    "b": "posted at once as Digits='', no FinishedOnKey",
    "c": "ignored until the timeout, then as silence",
    "d": "no request, the next verb runs",
}
# The attestation a mobile caller's call carries: the carrier vouches for the number.
MOBILE_STIR = "TN-Validation-Passed-A"


@dataclass(frozen=True)
class Press:
    """Keys and when the caller types them.

    after_says is how many <Say>s the caller hears before typing, counted from
    the first thing said since the previous entry (notices outside the <Gather>
    included), then the <Gather>'s own. 0 types at once; None (a plain string)
    types once the whole prompt has been heard. Keys that land on a verb outside
    the <Gather> are lost, and the <Gather> then hears silence: the caller
    believes they have answered and waits.
    """

    keys: str
    after_says: int | None = None

    @classmethod
    def at_once(cls, keys: str) -> Press:
        return cls(keys, after_says=0)


@dataclass
class Prompt:
    """A <Gather> waiting for keys, as the caller meets it, before any of its audio plays."""

    num_digits: int | None
    finish_on_key: str
    timeout: int
    heard: str  # everything the <Gather> says, in order (a caller who types early hears less)
    audio: list[Audio] = field(default_factory=list)  # the <Gather>'s nested <Say>s, <Pause>s and <Play>s
    before: list[Audio] = field(default_factory=list)  # heard outside any <Gather> since the last entry
    action: str = ""  # the URL the entry is posted to (absolute)
    action_on_empty_result: bool = False
    number: int = 0  # 1 for the call's first <Gather>
    url: str = ""  # the TwiML document the <Gather> is in
    # At <Pay>: the payment step asked for ("payment-card-number", ...), its attempt, of how many, and the
    # error the previous attempt met ("" for none). A <Pay> step has no numDigits; # ends it.
    pay_step: str = ""
    attempt: int = 0
    max_attempts: int = 0
    error: str = ""

    @property
    def says(self) -> list[Audio]:
        return [item for item in self.audio if item.kind == "say"]

    @property
    def languages(self) -> list[str]:
        """The languages of the <Gather>'s <Say>s, each once, in order."""
        return list(dict.fromkeys(say.language for say in self.says))

    @property
    def offered(self) -> list[str]:
        """The keys the <Gather> offers in words ("press 1", "press pound"), in order."""
        return list(dict.fromkeys(key for say in self.says for key in offered_keys(say.text)))


@dataclass
class Event:
    """One line of the transcript.

    kind is one of: say, pause, play (heard); twilio (<Pay>'s own words, not in
    our TwiML); prompt (a <Gather> or a <Pay> step listens); keys (an entry),
    silence (none); wait (seconds before Twilio posts, after an entry or
    silence); lost (keys typed outside a <Gather>); interrupted (a <Gather>'s
    audio cut off by keys); pay (what <Pay> does: starts, refuses an entry,
    posts its result); charging (the connector charging the card); request (a
    POST); error (a webhook failed); hangup; unsupported (a verb or attribute
    the simulator skips).
    """

    kind: str
    text: str
    seconds: float = 0.0  # on the virtual clock: say, pause, wait, charging; keys at <Pay>: typing them
    language: str = ""  # say
    voice: str = ""  # say
    nested: bool = False  # say, pause: inside a <Gather>
    shown: str = ""  # say: the text with SSML breaks marked
    note: str = ""  # why, in words: what was posted, what a wait means
    # wait: the caller pressed a key the prompt offers, or a lone finishOnKey Twilio ignored (pound "c"),
    # and still waits for the timeout.
    flagged: bool = False
    totals: Totals = field(default_factory=Totals)  # the call's totals just before this event


@dataclass(frozen=True)
class Failure:
    """A webhook that failed, as Twilio reports it to the fallback URL."""

    url: str
    error_code: str  # ERROR_HTTP or ERROR_NO_ANSWER
    status: int | None  # the HTTP status, None when no answer came
    reason: str


# What a keys callback returns: keys typed after the prompt, a Press, "" for silence, None to hang up.
KeysCallback = Callable[[Prompt], "str | Press | None"]
Request = tuple[str, dict[str, str]]


class _HangUp:
    """The caller hung up at a prompt."""


HANG_UP = _HangUp()


@dataclass
class SimulatedCall:
    """One phone call. place(keys) follows it to the end; keys(prompt) answers each <Gather>.

    lang answers a language prompt (a <Gather> whose <Say>s are in more than one
    language) by itself: the caller presses the key offered in the <Say> whose
    language starts with lang, after hearing that <Say>, without asking keys().
    None leaves it to keys() like any prompt. The default, "en", keeps scripts
    written for a one-language call working.

    pound picks what Twilio does with a finishOnKey pressed before any digit:
    one of POUND_BEHAVIOURS (see the module docstring). stir is sent as
    StirVerstat on every request; None or "" sends none (an unattested call).

    entry_path is the number's "A call comes in" URL: VOICE_PATH, or
    DEPOSIT_PATH for the deposit line. pay_variant picks the shape of what
    Twilio posts after a <Pay> (phone.payment.VARIANTS); today dates the
    expiration dates <Pay> refuses as past.
    """

    base_url: str
    auth_token: str
    transport: Transport
    caller: str = "+12026230001"  # sent as From and Caller exactly, "anonymous" and "" included
    called: str = "+12025000000"
    call_sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))
    on_event: Callable[[Event], None] = lambda event: None
    transcript: list[Event] = field(default_factory=list)
    answers: list[tuple[str, Answer]] = field(default_factory=list)  # every answer received, by URL
    ended_by: str = ""  # "caller", "server" (<Hangup>), "end of document", "application error"
    stir: str | None = MOBILE_STIR  # StirVerstat; None or "" sends none
    lang: str | None = "en"
    pound: str = "b"  # a lone finishOnKey: "a", "b", "c" or "d" (POUND_BEHAVIOURS)
    fallback_url: str | None = None  # None: base_url + /twilio/fallback; "": no fallback URL configured
    entry_path: str = VOICE_PATH
    pay_variant: str = payment.DEFAULT_VARIANT
    today: date = field(default_factory=date.today)
    prompts: list[Prompt] = field(default_factory=list)  # every <Gather> and <Pay> step met, in order
    failures: list[Failure] = field(default_factory=list)  # every webhook that failed, in order
    totals: Totals = field(default_factory=Totals, init=False)  # so far; see totals_before() for earlier
    # Heard outside a <Gather> since the last entry: keys typed then are lost.
    _before: list[Audio] = field(default_factory=list, init=False, repr=False)
    _requests_since_prompt: int = field(default=0, init=False, repr=False)
    _pays: int = field(default=0, init=False, repr=False)  # <Pay>s met: each charge has its own reference

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if self.pound not in POUND_BEHAVIOURS:
            raise ValueError(f"pound={self.pound!r}: one of {', '.join(POUND_BEHAVIOURS)}")
        if self.pay_variant not in payment.VARIANTS:
            raise ValueError(f"pay_variant={self.pay_variant!r}: one of {', '.join(payment.VARIANTS)}")
        if self.fallback_url is None:
            self.fallback_url = self.base_url + FALLBACK_PATH

    # Requests ---------------------------------------------------------------

    def params(self, **extra: str) -> dict[str, str]:
        """The parameters Twilio sends with every request of this call."""
        params = {
            "CallSid": self.call_sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.caller,
            "To": self.called,
            "Caller": self.caller,
            "Called": self.called,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        if self.stir:
            params["StirVerstat"] = self.stir
        return {**params, **extra}

    def post(self, url: str, params: dict[str, str]) -> Answer:
        """One signed POST, as Twilio makes it. Raises what the transport raises when no answer comes."""
        url = url if "://" in url else self.base_url + url
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        self._count(requests=1)
        try:
            answer = self.transport.post(url, params, {"X-Twilio-Signature": signature})
        except NO_ANSWER_ERRORS as error:
            self._note("request", f"POST {path_and_query(url)} -> no answer ({error})")
            raise
        self.answers.append((url, answer))
        self._note("request", f"POST {path_and_query(url)} -> {answer.status} ({answer.milliseconds:.0f} ms)")
        return answer

    def totals_before(self, pattern: str | re.Pattern[str]) -> Totals | None:
        """The totals just before the first <Say> heard that matches pattern (a regex, any case).

        E.g. totals_before("balance|saldo").entries: the entries it took to hear the balance.
        None when nothing heard matched.
        """
        regex = re.compile(pattern, re.IGNORECASE) if isinstance(pattern, str) else pattern
        for event in self.transcript:
            if event.kind == "say" and regex.search(event.text):
                return event.totals
        return None

    # The call ---------------------------------------------------------------

    def place(self, keys: KeysCallback) -> list[Event]:
        """Place the call and follow the TwiML until it ends; returns the transcript."""
        request: Request | None = (self.base_url + self.entry_path, self.params())
        try:
            while request is not None:
                self._requests_since_prompt += 1
                if self._requests_since_prompt > MAX_REQUESTS_WITHOUT_A_PROMPT:
                    raise CallFailed("the call loops without asking for anything")
                document = self._fetch(*request)
                if document is None:
                    break
                request = self._follow(*document, keys)
        finally:
            self._status_callback()
        return self.transcript

    def _fetch(self, url: str, params: dict[str, str]) -> tuple[str, str] | None:
        """The TwiML for a request, from the fallback URL if the URL fails; None when both fail."""
        outcome = self._try(url, params)
        if isinstance(outcome, Answer):
            return url, outcome.body
        if self.fallback_url:
            fallback = self._try(self.fallback_url, self.params(ErrorCode=outcome.error_code, ErrorUrl=url))
            if isinstance(fallback, Answer):
                return self.fallback_url, fallback.body
        # Twilio's own words, then it hangs up.
        self._hear(
            Audio(
                "say",
                APPLICATION_ERROR,
                clock.speech_seconds(APPLICATION_ERROR),
                clock.words(APPLICATION_ERROR),
                language="en-US",
                voice="Twilio",
                shown=APPLICATION_ERROR,
            )
        )
        self._note("hangup", "Twilio hangs up: the webhook and its fallback failed")
        self.ended_by = "application error"
        return None

    def _try(self, url: str, params: dict[str, str]) -> Answer | Failure:
        try:
            answer = self.post(url, params)
        except NO_ANSWER_ERRORS as error:
            failure = Failure(url, ERROR_NO_ANSWER, None, f"no answer: {error}")
        else:
            if answer.milliseconds > TWILIO_TIMEOUT_SECONDS * 1000:
                failure = Failure(
                    url,
                    ERROR_NO_ANSWER,
                    answer.status,
                    f"answered after {answer.milliseconds / 1000:.1f} s: Twilio gave up at 15 s",
                )
            elif not 200 <= answer.status < 300:
                failure = Failure(url, ERROR_HTTP, answer.status, f"HTTP {answer.status}")
            else:
                return answer
        self.failures.append(failure)
        then = (
            "the fallback failed too"
            if url == self.fallback_url
            else "Twilio requests the fallback URL"
            if self.fallback_url
            else "no fallback URL"
        )
        self._note("error", f"POST {path_and_query(url)}: {failure.reason} (ErrorCode {failure.error_code}): {then}")
        return failure

    def _status_callback(self) -> None:
        duration = str(math.ceil(self.totals.seconds))
        try:
            self.post(self.base_url + STATUS_PATH, self.params(CallStatus="completed", CallDuration=duration))
        except NO_ANSWER_ERRORS as error:
            self._note("error", f"the status callback got no answer: {error}")

    def _follow(self, document_url: str, body: str, keys: KeysCallback) -> Request | None:
        """Run one TwiML document: the next request, or None when the call ends."""
        for verb in twiml.read(body, document_url):
            match verb:
                case Audio():
                    self._hear(verb)
                    self._before.append(verb)
                case Gather():
                    self._requests_since_prompt = 0
                    outcome = self._gather(verb, document_url, keys)
                    if outcome is HANG_UP:
                        self.ended_by = "caller"
                        return None
                    if outcome is not None:
                        return outcome
                case Redirect():
                    return verb.url, self.params()
                case Hangup():
                    self._note("hangup", "the call is rejected" if verb.rejected else "the line goes quiet")
                    self.ended_by = "server"
                    return None
                case Pay():
                    paid = self._pay(verb, document_url, keys)
                    if paid is HANG_UP:
                        self.ended_by = "caller"
                        return None
                    return paid
                case Unsupported():
                    self._note("unsupported", f"<{verb.tag}> is not simulated: skipped")
        # Out of verbs: Twilio ends the call.
        self._note("hangup", "no more verbs: the call ends")
        self.ended_by = "end of document"
        return None

    # <Gather> -----------------------------------------------------------------

    def _gather(self, gather: Gather, document_url: str, keys: KeysCallback) -> Request | _HangUp | None:
        before, self._before = self._before, []
        prompt = self._prompt(gather, document_url, before)
        self.prompts.append(prompt)

        chosen = self._language_choice(prompt)
        if chosen is not None:
            press = chosen
        else:
            answer = keys(prompt)
            if answer is None:
                for audio in prompt.audio:
                    self._hear(audio)
                self._note("hangup", "the caller hangs up")
                return HANG_UP
            press = answer if isinstance(answer, Press) else Press(answer)

        pressed = self._listen(prompt, press)
        languages = f" languages={','.join(prompt.languages)}" if len(prompt.languages) > 1 else ""
        self._note(
            "prompt",
            f"keys? numDigits={prompt.num_digits or 'any'} "
            f"finishOnKey={prompt.finish_on_key or 'none'} timeout={prompt.timeout} s{languages}",
        )
        why = f"lang={self.lang}: the caller picks their language; " if chosen is not None else ""
        return self._entry(prompt, pressed, why)

    def _listen(self, prompt: Prompt, press: Press) -> str:
        """Play the <Gather>'s audio up to the caller's keys; returns the keys the <Gather> receives."""
        before, audio = prompt.before, prompt.audio
        point = _typing_point(before + audio, press.after_says) if press.keys else len(before) + len(audio)
        pressed = press.keys
        if pressed and point < len(before):
            # Typed while a verb outside the <Gather> played: Twilio was not listening.
            landed = before[point]
            during = repr(landed.text) if landed.kind == "say" else f"a <{landed.kind.title()}>"
            self._note(
                "lost",
                pressed,
                note=f"typed during {during}, outside the <Gather>: Twilio drops them and the <Gather> hears nothing",
            )
            self._count(keys_lost=len(pressed))
            pressed, point = "", len(before) + len(audio)
        # Barge-in: the first key stops the <Gather>'s audio.
        cut = point - len(before)
        for item in audio[:cut]:
            self._hear(item)
        if audio[cut:]:
            unheard = " / ".join(item.text or f"<{item.kind.title()}>" for item in audio[cut:])
            self._note("interrupted", unheard, note="keys stop the <Gather>'s audio")
        return pressed

    def _entry(self, prompt: Prompt, pressed: str, why: str = "") -> Request | None:
        """Twilio's reading of the keys: what is posted, and after how long."""
        finish = prompt.finish_on_key
        heard = pressed
        # (c): Twilio ignores a finishOnKey that no digit precedes and keeps listening, so later keys still count.
        skipped = self.pound == "c" and bool(finish) and pressed.startswith(finish)
        if skipped:
            heard = pressed.lstrip(finish)
        collected, finished_on, ignored = twiml.read_entry(heard, finish_on_key=finish, num_digits=prompt.num_digits)
        alone = bool(finished_on) and not collected  # a lone finishOnKey ended the <Gather> (a, b, d)
        complete = bool(finished_on) or bool(prompt.num_digits and len(collected) >= prompt.num_digits)
        # numDigits reached or finishOnKey pressed: Twilio posts at once. Anything else waits for the timeout.
        wait = 0 if complete else prompt.timeout
        posts = bool(collected) or (prompt.action_on_empty_result and not (alone and self.pound == "d"))
        params = {"Digits": collected}
        if self.pound == "a":
            # Only (a) sends it: it is in no parameter table, so the app must not need it.
            params["FinishedOnKey"] = finished_on
        shown = " ".join(f"{name}={value!r}" for name, value in params.items())
        sent = f"posts {shown}" if posts else "posts nothing: the next verb runs"
        if alone:
            sent = f"({self.pound}) " + self._lone_finish(prompt, shown, posts)
        elif skipped:
            then = f"posts {shown}" if posts else "the next verb runs"
            sent = (
                f"(c) {finish} ignored: Twilio waits for the timeout, then {then}"
                if not heard
                else f"(c) {finish} ignored: Twilio keeps listening; {sent}"
            )

        if not pressed:
            self._note("silence", "(no keys)", note=sent)
            self._note("wait", f"{wait} s", seconds=wait, note="silence: Twilio waits for the timeout")
            self._count(silence_seconds=wait, seconds=wait)
        else:
            late = f"; {ignored!r} came after the entry ended: lost" if ignored else ""
            self._note("keys", pressed, note=why + sent + late)
            offered = wait > 0 and pressed in prompt.offered
            suffered = wait > 0 and skipped
            if suffered:
                note = f"{finish!r} pressed first is ignored (c): the caller waits {wait} s for the timeout"
            elif offered:
                note = f"{pressed!r} is offered by the prompt, yet the caller waits {wait} s for the timeout"
            else:
                note = "" if wait == 0 else "no numDigits reached, no finishOnKey: Twilio waits for the timeout"
            self._note("wait", f"{wait} s", seconds=wait, note=note, flagged=offered or suffered)
            self._count(entries=1, wait_seconds=wait, seconds=wait)
        if not posts:
            return None
        return prompt.action, self.params(**params, msg="Gather End")

    def _lone_finish(self, prompt: Prompt, shown: str, posts: bool) -> str:
        """What the chosen behaviour does with a finishOnKey pressed before any digit, in words."""
        if self.pound == "d":
            even = ", even with actionOnEmptyResult" if prompt.action_on_empty_result else ""
            return f"no request: the next verb runs{even}"
        if not posts:
            return "no request without actionOnEmptyResult: the next verb runs"
        return f"posts {shown} at once" + (", no FinishedOnKey" if self.pound == "b" else "")

    def _prompt(self, gather: Gather, document_url: str, before: list[Audio]) -> Prompt:
        for tag in gather.skipped:
            self._note("unsupported", f"<{tag}> inside <Gather> is not simulated: skipped")
        return Prompt(
            num_digits=gather.num_digits,
            finish_on_key=gather.finish_on_key,
            timeout=gather.timeout,
            heard=" ".join(item.text for item in gather.audio if item.kind == "say"),
            audio=list(gather.audio),
            before=before,
            action=gather.action,
            action_on_empty_result=gather.action_on_empty_result,
            number=len(self.prompts) + 1,
            url=document_url,
        )

    def _language_choice(self, prompt: Prompt) -> Press | None:
        """The caller's own key on a language prompt, typed after hearing their language's <Say>.

        A language prompt offers one key per language, each in one <Say> of its
        own language, the keys 1, 2, 3 ... in order; a menu that also offers
        another language ("Para español, oprima 9") offers several keys in its
        own, and a prompt that offers "#" in one language and 9 in another
        ("For other options, press pound." ... "Para español, oprima 9.") is
        not one either.
        """
        if not self.lang or len(prompt.languages) < 2:
            return None
        offering = [audio for audio in prompt.audio if audio.kind == "say" and offered_keys(audio.text)]
        languages = [audio.language for audio in offering]
        if len(set(languages)) < 2 or len(set(languages)) != len(languages):
            return None  # not one offer per language: a menu, however many languages it speaks
        if any(len(offered_keys(audio.text)) != 1 for audio in offering):
            return None
        if [offered_keys(audio.text)[0] for audio in offering] != [str(key) for key in range(1, len(offering) + 1)]:
            return None
        says_heard = sum(1 for audio in prompt.before if audio.kind == "say")
        for audio in prompt.audio:
            if audio.kind != "say":
                continue
            says_heard += 1
            keys = offered_keys(audio.text)
            if audio.language.lower().startswith(self.lang.lower()) and keys:
                return Press(keys[0], after_says=says_heard)
        return None

    # <Pay> ----------------------------------------------------------------------

    def _pay(self, pay: Pay, document_url: str, keys: KeysCallback) -> Request | _HangUp:
        """Act out a <Pay>: each step asked, checked and tried again, the card charged, the result posted."""
        self._requests_since_prompt = 0
        self._pays += 1
        variant = payment.VARIANTS[self.pay_variant]
        amount = f"charges {pay.charge_amount} {pay.currency}" if pay.charge_amount else "tokenizes (no chargeAmount)"
        self._note(
            "pay",
            f"<Pay> {amount} through connector {pay.connector!r}, its own words in {pay.language}; "
            f"asks for {', '.join(payment.STEP_WORDS[step].removeprefix('the ') for step in pay.steps)}; "
            f"maxAttempts={pay.max_attempts} timeout={pay.timeout} s",
        )
        for name in pay.ignored:
            self._note("unsupported", f"{name} is in no table of Twilio's: ignored (a schema warning, 12200)")
        if not pay.action.startswith("https://"):
            self._note("pay", f"action {pay.action}: a real <Pay> posts to https only")
        if pay.status_callback:
            self._note(
                "pay",
                "statusCallback: progress posted after each entry (For, Attempt, ErrorType: our reading; "
                "Twilio's docs name the callback, not its fields)",
            )
        before, self._before = self._before, []
        entered: dict[str, str] = {}
        for step in pay.steps:
            attempt, error = 1, ""
            while True:
                kind, typed = self._pay_step(pay, step, attempt, error, entered, document_url, before, keys)
                before = []
                if kind == "hangup":
                    self._pay_hung_up(pay, variant, entered)
                    return HANG_UP
                if kind == "star":
                    return self._pay_result(pay, "caller-interrupted-with-star", variant, entered)
                if kind == "silence":
                    error, why = "timeout", "no keys"
                else:
                    error, why = payment.check(
                        step, typed, pay=pay, card=entered.get("payment-card-number", ""), today=self.today
                    )
                self._pay_progress(pay, step, attempt, error)
                if not error:
                    entered[step] = typed
                    break
                self._note("pay", f"{error}: {why} (attempt {attempt} of {pay.max_attempts})")
                if attempt >= pay.max_attempts:
                    return self._pay_result(pay, "too-many-failed-attempts", variant, entered, error=error)
                attempt += 1
        processing = pay.prompt("payment-processing", attempt=1)
        for audio in processing.audio if processing else (self._own_words(pay, "payment-processing"),):
            self._hear(audio)
        charged = payment.charge(entered["payment-card-number"], pay)
        # With no chargeAmount the connector only makes a token of the card: the service charges it later.
        kind = "charging" if pay.charge_amount else "tokenizing"
        self._note(kind, f"{clock.CHARGING_SECONDS:g} s", seconds=clock.CHARGING_SECONDS, note=charged.note)
        self._count(charging_seconds=clock.CHARGING_SECONDS, seconds=clock.CHARGING_SECONDS)
        return self._pay_result(pay, charged.result, variant, entered, charged=charged)

    def _pay_progress(self, pay: Pay, step: str, attempt: int, error: str) -> None:
        """<Pay>'s statusCallback after an entry: which field, which attempt, what went wrong. Its answer changes
        nothing in the call; one that does not come is noted."""
        if not pay.status_callback:
            return
        progress = {"For": step, "Attempt": str(attempt), **({"ErrorType": error} if error else {})}
        try:
            answer = self.post(pay.status_callback, self.params(**progress))
        except NO_ANSWER_ERRORS as failed:
            self._note("error", f"<Pay>'s progress request got no answer: {failed}")
            return
        if answer.status != 200:
            self._note("error", f"<Pay>'s progress request answered {answer.status}")

    def _pay_step(
        self,
        pay: Pay,
        step: str,
        attempt: int,
        error: str,
        entered: dict[str, str],
        document_url: str,
        before: list[Audio],
        keys: KeysCallback,
    ) -> tuple[str, str]:
        """One attempt at a step: ("keys", the entry), ("silence", ""), ("star", "") or ("hangup", "")."""
        card = payment.card_type(entered.get("payment-card-number", ""))
        chosen = pay.prompt(step, attempt=attempt, error=error, card_type=card)
        audio = list(chosen.audio) if chosen else [self._own_words(pay, step, error)]
        prompt = Prompt(
            num_digits=None,
            finish_on_key="#",
            timeout=pay.timeout,
            heard=" ".join(item.text for item in audio if item.kind in ("say", "twilio")),
            audio=audio,
            before=before,
            action=pay.action,
            number=len(self.prompts) + 1,
            url=document_url,
            pay_step=step,
            attempt=attempt,
            max_attempts=pay.max_attempts,
            error=error,
        )
        self.prompts.append(prompt)
        answer = keys(prompt)
        if answer is None:
            for item in audio:
                self._hear(item)
            self._note("hangup", "the caller hangs up")
            return "hangup", ""
        pressed = self._listen(prompt, answer if isinstance(answer, Press) else Press(answer))
        self._note(
            "prompt",
            f"<Pay> {payment.STEP_WORDS[step]}? attempt {attempt} of {pay.max_attempts}, timeout={pay.timeout} s",
        )
        return self._pay_entry(pay, pressed)

    def _pay_entry(self, pay: Pay, pressed: str) -> tuple[str, str]:
        """<Pay>'s reading of one step's keys, on the clock: typing them, then the wait before it checks them."""
        if not pressed:
            self._note("silence", "(no keys)", note="the timeout error")
            self._note("wait", f"{pay.timeout} s", seconds=pay.timeout, note="silence: <Pay> waits for the timeout")
            self._count(silence_seconds=pay.timeout, seconds=pay.timeout)
            return "silence", ""
        star = pressed.find("*")
        hash_ = pressed.find("#")
        if star >= 0 and (hash_ < 0 or star < hash_):
            typed, late = pressed[: star + 1], pressed[star + 1 :]
            kind, entry, wait, note = "star", "", 0, "* ends <Pay> at once: Result=caller-interrupted-with-star"
        elif hash_ >= 0:
            typed, late = pressed[: hash_ + 1], pressed[hash_ + 1 :]
            kind, entry, wait, note = "keys", pressed[:hash_], 0, "# ends it at once"
        else:
            typed, late = pressed, ""
            kind, entry, wait = "keys", pressed, pay.timeout
            note = f"no #: <Pay> waits {pay.timeout} s for another key, then checks them"
        if late:
            note += f"; {late!r} came after the entry ended: lost"
        typing = round(len(typed) * clock.KEY_SECONDS, 2)
        self._note("keys", pressed, seconds=typing, note=note)
        self._note("wait", f"{wait} s", seconds=wait, note="<Pay> checks the entry after its timeout" if wait else "")
        self._count(entries=1, typing_seconds=typing, wait_seconds=wait, seconds=typing + wait)
        return kind, entry

    def _own_words(self, pay: Pay, step: str, error: str = "") -> Audio:
        """What <Pay> says at a step we gave no <Prompt> for: its own words, in its language, unknown to us."""
        after = f" after {error}" if error else ""
        text = f"(its own words: {payment.STEP_WORDS[step]}{after}; no <Prompt> for it)"
        return Audio(
            "twilio",
            text,
            clock.TWILIO_PROMPT_SECONDS,
            language=pay.language,
            voice="Twilio",
            shown=text,
            nested=True,
        )

    def _pay_result(
        self,
        pay: Pay,
        result: str,
        variant: payment.Variant,
        entered: dict[str, str],
        *,
        charged: payment.Charged | None = None,
        error: str = "",
    ) -> Request:
        """The action request Twilio makes when <Pay> ends: its usual parameters and the result's."""
        fields = payment.posted(
            result=result,
            variant=variant,
            pay=pay,
            entered=entered,
            charged=charged,
            error=error,
            reference_seed=f"{self.call_sid}:{self._pays}",
        )
        self._note("pay", "posts " + " ".join(f"{name}={value!r}" for name, value in fields.items()))
        return pay.action, self.params(**fields)

    def _pay_hung_up(self, pay: Pay, variant: payment.Variant, entered: dict[str, str]) -> None:
        """The caller hung up inside <Pay>: Twilio still posts the result; its answer has no call to go to."""
        url, params = self._pay_result(pay, "caller-hung-up", variant, entered)
        self._try(url, params)

    # The transcript and the clock ---------------------------------------------

    def _hear(self, audio: Audio) -> None:
        loops = (
            f" (x{audio.loop})"
            if audio.loop > 1
            else " (loop=0: until the call ends; counted once)"
            if audio.loop == 0
            else ""
        )
        text = audio.text if audio.kind != "pause" else f"{audio.seconds:g} s"
        self._note(
            audio.kind,
            text,
            seconds=audio.seconds,
            language=audio.language,
            voice=audio.voice,
            nested=audio.nested,
            shown=audio.shown + loops if audio.kind in ("say", "twilio") else "",
        )
        self._count(words=audio.words, seconds=audio.seconds)

    def _count(self, **more: float) -> None:
        self.totals = self.totals.plus(**more)

    def _note(self, kind: str, text: str, **details: object) -> None:
        event = Event(kind, text, totals=self.totals, **details)  # type: ignore[arg-type]
        self.transcript.append(event)
        self.on_event(event)


# The caller -----------------------------------------------------------------------


def _typing_point(sequence: list[Audio], after_says: int | None) -> int:
    """The index in sequence of the first item not heard when the caller types."""
    if after_says is None:
        return len(sequence)
    says = 0
    for index, audio in enumerate(sequence):
        if says >= after_says:
            return index
        says += audio.kind in ("say", "twilio")
    return len(sequence)


def offered_keys(text: str) -> list[str]:
    """The keys a sentence offers: "For English, press 1." -> ["1"]; "oprima la tecla numeral" -> ["#"].

    The words come from the language registry (myibot/languages.py): each language's "press"
    words and its names of # and *, so a new language is heard without a change here.
    """
    # The registry in settings when Django runs (a test may register a language); the records
    # themselves when the simulator runs on its own (the benchmark's callers).
    records = languages.registered().values() if settings.configured else languages.RECORDS
    spoken = tuple((record.press, tuple(record.key_names.items())) for record in records)
    offer, key_names = _offer(spoken)
    return [key_names.get(match.group("key").lower(), match.group("key")) for match in offer.finditer(text)]


@lru_cache(maxsize=4)
def _offer(
    spoken: tuple[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], ...],
) -> tuple[re.Pattern[str], dict[str, str]]:
    # Longest words first, so that "oprima la tecla de" wins over "oprima".
    words = sorted({word.lower() for press, _names in spoken for word in press}, key=len, reverse=True)
    key_names = {name.lower(): key for _press, names in spoken for name, key in names}
    spoken = "|".join(r"\s+".join(map(re.escape, word.split())) for word in words)
    names = "|".join(map(re.escape, sorted(key_names, key=len, reverse=True)))
    pattern = re.compile(rf"\b(?:{spoken})\s+(?P<key>[0-9*#]|{names})(?!\w)", re.IGNORECASE)
    return pattern, key_names


def scripted(keys: Iterable[str | Press]) -> KeysCallback:
    """Answer prompts from a list ("" is silence); hang up when it runs out."""
    remaining = iter(keys)
    return lambda prompt: next(remaining, None)
