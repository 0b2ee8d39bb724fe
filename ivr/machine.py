"""The call as a state machine: one mechanism that runs every step.

A step (ivr/steps/) says what it asks, which keys it takes, where each answer
leads, and what it says when the caller asks for help. This module does
everything steps have in common: loading and locking the call's state,
telling a real answer from a retry or a stale URL, the keys that mean the same
at every prompt (0 help, * back to the main menu, 9 another language before
sign-in), counting silences, wrong keys and refusals, and building the TwiML
with an explicit <Redirect> after every <Gather>, in the caller's language.

No dead air after a key, whatever Twilio does with a lone finishOnKey. Its
docs disagree on a "#" pressed before any digit: posted at once with or
without FinishedOnKey, ignored until the timeout, or ending the <Gather> with
no request so that the next verb (our <Redirect>) runs. Nothing here reads
FinishedOnKey: an empty entry, however it arrives, is one thing, and a step
that offers "#" alone (the member-ID prompt) treats every empty entry as the
caller asking for the other options. Notices are nested inside the next
<Gather>, so that keys pressed while they play are kept.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import ClassVar

from django.conf import settings
from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from twilio.twiml.voice_response import VoiceResponse

from accounts import activity
from ivr import twiml
from ivr.languages import other_language, other_languages
from ivr.models import CallAhead, CallSession
from myibot import languages
from myibot.after_answer import after_answer
from myibot.db import Question, insert_unless_conflict, update_later, update_where

# Three silences, or three unusable entries, in a row at one prompt (FreeSWITCH's
# max-timeouts and max-failures): goodbye before sign-in, the main menu after.
STRIKES = 3
# Answers understood but refused with a reason (a weak PIN) are no mistake: a
# caller before sign-in gets five in a row before the call ends.
REFUSALS_BEFORE_SIGN_IN = 5
# Keys that mean the same at every prompt (ISO/IEC 13714): no PIN, member ID
# or amount is a lone 0, *, or 9.
HELP_KEY = "0"
BACK_KEY = "*"
LANGUAGE_KEY = "9"
# Steps the machine itself leads to; ivr.steps registers them (a test checks).
MAIN_MENU = "menu"
LANGUAGE_MENU = "language"
DEPOSIT_LANGUAGE_MENU = "deposit_language"

NOTHING_HEARD = _("You did not press a key.")
GOODBYE_SILENCE = _("You did not press a key. Please call again when you are ready. Goodbye.")
GOODBYE_TOO_MANY = _("Sorry, there were too many tries. Please call again later. Goodbye.")
START_AGAIN = _("Let's start again.")
BACK_WITH_STAR = _("To go back to the main menu, press star.")
# Where a prompt takes several digits, a lone star waits out the timeout; star then pound goes at once.
BACK_WITH_STAR_POUND = _("To go back to the main menu, press star, then pound.")
ASK_STAFF = _("If you need more help, please ask staff.")
PRESS_0_FOR_STAFF = _("To talk to staff, press 0 again.")
CONNECTING_TO_STAFF = _("Connecting you to staff. Please hold.")
# What a caller hears when a call to staff ends, by Twilio's DialCallStatus.
STAFF_CALL_ENDED = {
    "completed": _("Your call with staff has ended."),
    "answered": _("Your call with staff has ended."),
    "busy": _("Staff are busy right now. Please try again later."),
    "no-answer": _("Nobody from staff could answer right now. Please try again later."),
    "canceled": _("Nobody from staff could answer right now. Please try again later."),
    "failed": _("We could not reach staff right now. Please try again later."),
}
PAUSE = object()  # a one-second pause between lines of a prompt

# What a caller hears: a plain or lazily translated string.
Words = str | Promise


@dataclass(frozen=True)
class InLanguage:
    """A line said in a given language and its voice, whatever the call's ("Para español, oprima 2.")."""

    language: str
    text: Words
    params: tuple[tuple[str, object], ...] = ()  # filled in after translating, in that language


def language_offer(code: str, key: str) -> InLanguage:
    """A registered language offering itself with key, in its own words and voice ("Para español, oprima 9.")."""
    return InLanguage(code, languages.registered()[code].offer, (("key", key),))


@dataclass(frozen=True)
class Code:
    """Digits read for writing down, each followed by a real pause.

    uninterrupted: said before the <Gather>, so that no key cuts it off (keys
    pressed meanwhile are lost); a re-prompt after a wrong key skips it.
    """

    before: Words
    digits: str
    uninterrupted: bool = False


Line = Words | InLanguage | Code | object

# Twilio never sends more keys than a prompt asked for; anything longer is
# garbage, and is refused without more work.
LONGEST_ENTRY = 32


@dataclass(frozen=True)
class Goto:
    """The answer is taken: move to a step (a new prompt), saying notice first.

    step is a Step class or its name. From Step.silence(), counts_silence
    carries the empty entry to the next prompt, so that a caller who never
    presses anything is not led from prompt to prompt forever.
    """

    step: str | type[Step]
    notice: Words = ""
    counts_silence: bool = True

    @property
    def name(self) -> str:
        return self.step if isinstance(self.step, str) else self.step.name


@dataclass(frozen=True)
class Again:
    """Ask the same prompt again after notice.

    strike=False: the answer was understood and refused with a reason (a weak
    PIN): a refusal, which ends nothing before sign-in until five in a row.
    """

    notice: Words
    strike: bool = True


@dataclass(frozen=True)
class Goodbye:
    message: Words


@dataclass(frozen=True)
class Pay:
    """Hand the call to Twilio's <Pay> for a pending card deposit; its action request comes to payment_made.

    The step that returns it renders the <Pay> verb (Step.pay) and takes what Twilio reports (Step.paid).
    """

    deposit_id: int


Outcome = Goto | Again | Goodbye | Pay


class Step:
    """One prompt of the call. Subclasses are registered by name with @step."""

    name: ClassVar[str]
    keys: ClassVar[re.Pattern[str]]  # the entries this prompt accepts, ASCII only
    wrong_keys: ClassVar[Words]  # said when an entry does not match keys
    # Said when the caller presses 0: what this prompt wants, in a sentence or two.
    help: ClassVar[Words]
    num_digits: ClassVar[int | None] = None
    # Ends an entry at once, and is left out of it. Pressed alone it is an
    # empty entry, like silence: Twilio's docs leave open how it arrives.
    finish_on_key: ClassVar[str] = "#"
    signed_in_only: ClassVar[bool] = True
    # Counts PINs, creates an account or moves money: the call stays locked for
    # the whole step (see answer_prompt); the others write back optimistically.
    locks_call: ClassVar[bool] = False
    # Before sign-in: where three wrong entries lead; None ends the call.
    after_three_wrong: ClassVar[str | None] = None
    # Signed in: what did not happen when the caller leaves this prompt for the
    # main menu (with * or after three strikes), e.g. "No money was sent."
    abandoned: ClassVar[Words] = ""
    # Before sign-in, a lone 9 here switches language (a caller who missed the
    # language prompt), and a re-prompt offers it.
    takes_language_key: ClassVar[bool] = False
    # Checks a PIN: the machine has count_pin_attempt() count it first (locks_call too).
    checks_pin: ClassVar[bool] = False
    # Its prompt says digits that are the caller's own in its words (a recipient code, a card's last
    # four): never kept in memory once said (_render), as a prompt with a Code line is not either.
    says_digits: ClassVar[bool] = False
    # What its prompt asks of the account (the balance: its card money): an answer that leads here has it read
    # with the call (read_with_call).
    prompt_asks: ClassVar[tuple[Question, ...]] = ()

    def prompt(self, call: CallSession) -> list[Line]:
        raise NotImplementedError

    def answer(self, call: CallSession, keys: str) -> Outcome:
        raise NotImplementedError

    def locks_for(self, entry: str | None) -> bool:
        """Whether answering with entry holds the call locked for the whole step (locks_call; a menu: per key)."""
        return self.locks_call

    def read_with_call(self, entry: str | None) -> tuple[Question, ...]:
        """What answering with entry will ask (of the account, or of the entry itself), to be read in the same
        statement as the call (CallSession.find_with): one round trip, not one more for each. A step that asks
        something in answer() names it here, and so does a menu for the prompt (prompt_asks) a key leads to."""
        return ()

    def silence(self, call: CallSession) -> Outcome | None:
        """Where an empty entry (silence, or a lone #) leads; None asks again. Either way it counts toward three."""
        return None

    def pay(self, call: CallSession, deposit_id: int, action: str) -> VoiceResponse:
        """For a step that returns Pay: the <Pay> verb for the deposit, posting its result to action."""
        raise NotImplementedError

    def paid(self, call: CallSession, deposit_id: int, result: dict[str, str]) -> Outcome:
        """For a step that returns Pay: where Twilio's report of the payment leads (its action request's fields)."""
        raise NotImplementedError

    def count_pin_attempt(self, call: CallSession, keys: str) -> object | None:
        """For a step that checks a PIN: count the attempt before answer() checks it (accounts.identity).

        Called by the machine outside any transaction, so that the count
        commits on its own before Argon2 runs; answer() finds what it returns
        in call.pin_attempt. None: nothing to count here.
        """
        return None


STEPS: dict[str, Step] = {}
# Which step a call starts at: the PIN prompt for a trusted home number, the
# member-ID prompt for everyone else. Registered by ivr.steps with @first_step;
# the deposit line's, with @first_deposit_step.
_first_steps: dict[bool, Callable[[CallSession], str]] = {}


def step(cls: type[Step]) -> type[Step]:
    STEPS[cls.name] = cls()
    return cls


def first_step(choose: Callable[[CallSession], str]) -> Callable[[CallSession], str]:
    _first_steps[False] = choose
    return choose


def first_deposit_step(choose: Callable[[CallSession], str]) -> Callable[[CallSession], str]:
    _first_steps[True] = choose
    return choose


def _first_step(call: CallSession) -> str:
    return _first_steps[call.deposit_line](call)


@dataclass
class Reply:
    """What to answer Twilio, and what to log about it (never the keys)."""

    twiml: VoiceResponse | str  # built, or written already (a prompt: _render)
    outcome: str


def step_url(step_name: str, prompt_number: int) -> str:
    """Where a prompt's keys go; its no-input <Redirect> adds &no_input=1."""
    return f"{settings.BASE_URL}{_step_path(step_name)}?n={prompt_number}"


@lru_cache(maxsize=64)
def _step_path(step_name: str) -> str:
    # Resolved once per step: reverse() walks the URLconf every time, on every webhook.
    return reverse("ivr:step", args=[step_name])


def start_call(
    *, call_sid: str, caller: str, trusted: bool, greeting: Words, deposit_line: bool = False, line: str | None = None
) -> Reply:
    """The first prompt, for a new call or Twilio's retry of its first webhook.

    caller is the E.164 number or "" when withheld; trusted says whether the
    caller ID may open PIN-only sign-in. deposit_line: the call came to the
    deposit line's number, where families pay by card and nobody signs in.
    """
    if line is not None and deposit_line != (line == "deposit"):
        raise NotThisLine
    start = {"call_sid": call_sid, "caller": caller, "trusted": trusted, "greeting": greeting, "line": line}
    try:
        # Almost every first webhook is a new call: its row goes in with its first prompt in one statement,
        # without a transaction (no BEGIN and COMMIT to wait for). A call already there is restarted below.
        return _start_new_call(**start, deposit_line=deposit_line)
    except CallAlreadyStarted:
        pass
    with transaction.atomic():
        try:
            return _start_call(**start, deposit_line=deposit_line)
        except CallAlreadyStarted:
            # A retry of this webhook inserted the call between our look and
            # our insert; looking again (locked) waits for it and finds it.
            return _start_call(**start, deposit_line=deposit_line)


def _start_new_call(
    *, call_sid: str, caller: str, trusted: bool, greeting: Words, deposit_line: bool, line: str | None
) -> Reply:
    """The first prompt of a call not yet stored; CallAlreadyStarted (nothing written) if it is."""
    call = CallSession(call_sid=call_sid, caller=caller, caller_trusted=trusted, deposit_line=deposit_line)
    _restart(call)
    reply = _ask(call, [greeting], outcome="started")
    activity.call_started()  # once the insert went in: a retry that lost the race counts nothing
    return reply


class NotThisLine(Exception):
    """A request signed by one line's token named a call of the other line: it opens nothing (403)."""


class CallAlreadyStarted(Exception):
    pass


def _start_call(
    *, call_sid: str, caller: str, trusted: bool, greeting: Words, deposit_line: bool = False, line: str | None = None
) -> Reply:
    call = CallSession.find(call_sid, locked=True)
    if call is not None and not _on_line(call, line):
        raise NotThisLine  # one line's token naming a call of the other: neither restarted nor opened
    new = call is None
    if new:
        # Inserted with its first prompt in one statement (see _save).
        call = CallSession(call_sid=call_sid, caller=caller, caller_trusted=trusted, deposit_line=deposit_line)
    else:
        call.caller, call.caller_trusted = caller, trusted
        call.last_answer = ""
        call.language = ""
    _restart(call)
    reply = _ask(call, [greeting], outcome="started")
    if new:
        activity.call_started()  # once the insert went in: a retry that lost the race counts nothing
    return reply


def _restart(call: CallSession) -> None:
    """Back to the first prompt, signed out; which prompt depends on the caller."""
    call.restart()
    call.go_to(_first_step(call))


def _read_with_call(named: Step, entry: str | None) -> tuple[Question, ...]:
    """What the answer's prompt will ask, read with the call, unlocked (Step.read_with_call); nothing for no entry."""
    return named.read_with_call(entry) if entry is not None else ()


def read_call_ahead(*, call_sid: str, step_name: str, keys: str | None) -> CallAhead | None:
    """The read answer_prompt will make for these keys at step_name's prompt, sent to the database now.

    Sent before the request's signature is checked, so that PostgreSQL answers while it is: the first
    unlocked attempt takes it (_find). None for a step that locks the call for these keys (a PIN, money,
    an account written: their reads wait for a transaction and a lock) or one we do not know, and on SQLite.
    It only reads: a request that turns out not to be Twilio's gets its 403 once the rows are dropped.
    """
    named = STEPS.get(step_name)
    if named is None:
        return None
    entry = _entry(named, keys)
    if named.locks_for(entry):
        return None
    return CallSession.read_ahead(call_sid, _read_with_call(named, entry), entry=entry or "", now=timezone.now())


def answer_prompt(
    *,
    call_sid: str,
    caller: str,
    trusted: bool,
    step_name: str,
    prompt_number: int | None,
    keys: str | None,
    called: str = "",
    line: str | None = None,
    sent_ahead: CallAhead | None = None,
) -> Reply:
    """Take the caller's keys for the prompt a URL names (after the write-back of the prompt, if it is late).

    keys is None for the <Redirect> after a <Gather>; None and "" are both an
    empty entry (silence, or a lone "#" however Twilio delivered it). called
    is the service's own number (Twilio's To), the caller ID of a call to staff.

    A step that only reads (a menu, the balance, an amount) runs without a
    transaction: one round trip reads the call with what its answer asks
    (Step.read_with_call), and the call is written back after the answer is
    sent, only if it is still at the prompt it read (UPDATE ... WHERE
    prompt_number = n; _save). Twilio's retry of it, computed from the same
    state, answers the same; whichever writes second changes nothing, and a
    retry that comes after the write-back finds itself a retry. A step that counts PINs,
    creates an account or moves money (Step.locks_call, or the key of a menu's
    option that does: Step.locks_for) holds the call's row locked for the
    whole step, so that a retry waits for its first attempt.

    sent_ahead: the call's read, sent before the request's signature was checked (read_call_ahead); the
    first unlocked attempt takes it instead of reading.
    """
    answer = {
        "call_sid": call_sid,
        "caller": caller,
        "trusted": trusted,
        "step_name": step_name,
        "prompt_number": prompt_number,
        "keys": keys,
        "called": called,
        "line": line,
    }
    named = STEPS.get(step_name)

    def attempt(waited: bool) -> Reply:
        if named is not None and not named.locks_for(_entry(named, keys)):
            try:
                return _answer(**answer, locked=False, waited=waited, sent_ahead=sent_ahead)
            except CallMoved:
                pass
        # A PIN attempt is counted first, committed on its own: never inside the
        # step's transaction, whose rollback (a timeout) would make the guess free.
        counted = _count_pin_attempt(named, **answer, waited=waited) if named is not None and named.checks_pin else None
        with transaction.atomic():
            return _answer(**answer, locked=True, waited=waited, pin_attempt=counted)

    return _after_write_back(attempt)


# How long a request whose prompt is ahead of the call waits for the prompt's write-back, pause by pause
# (about half a second in all): it normally lands within milliseconds of the answer (myibot.after_answer).
WRITE_BACK_PAUSES = (0.01, 0.02, 0.04, 0.08, 0.15, 0.2)


class WriteBackPending(Exception):
    """The request answers a prompt newer than the call's stored one: that prompt's write-back has not landed."""


def _after_write_back(attempt: Callable[[bool], Reply]) -> Reply:
    """attempt(waited), after the write-back of the prompt the request answers, if that is still on its way.

    A step that moves no money answers first and writes the call back after (_save): a caller quick on the
    keys, or a client with no think time, can answer the new prompt before its UPDATE commits. attempt
    raises WriteBackPending, having written nothing (and released any lock, which the write-back would
    otherwise wait for); a short wait, then again. A write-back that never lands (it failed, or another
    request moved the call first) leaves the request stale: attempt(waited=True) starts the call again.
    """
    for pause in WRITE_BACK_PAUSES:
        try:
            return attempt(False)
        except WriteBackPending:
            time.sleep(pause)
    return attempt(True)


def _ahead(call: CallSession, prompt_number: int | None, *, waited: bool) -> None:
    """WriteBackPending if the request answers a prompt the call's stored state has not reached yet."""
    if not waited and prompt_number is not None and prompt_number > call.prompt_number:
        raise WriteBackPending


class CallMoved(Exception):
    """The call left the prompt a step read before the step could write it back."""


def _count_pin_attempt(
    current: Step,
    *,
    call_sid: str,
    caller: str,
    trusted: bool,
    step_name: str,
    prompt_number: int | None,
    keys: str | None,
    called: str,
    line: str | None,
    waited: bool,
) -> object | None:
    """Before the step runs: count a PIN entered at a prompt that checks one, unless this is a retry or stale.

    A PIN typed at a prompt whose write-back has not landed yet waits for it (WriteBackPending), as the
    step does: counted then, never skipped and then checked.
    """
    call = CallSession.find(call_sid, locked=False)
    if call is not None and _on_line(call, line) and call.caller == caller:
        _ahead(call, prompt_number, waited=waited)
    if (
        call is None
        or not _on_line(call, line)
        or call.caller != caller
        or call.ended
        or (step_name, prompt_number) != (call.step, call.prompt_number)
    ):
        return None
    if _digest(f"{step_name}:{prompt_number}:{keys!r}") == call.last_answer or (
        current.signed_in_only and not call.signed_in
    ):
        return None
    entry = _entry(current, keys)
    if entry is None or len(entry) > LONGEST_ENTRY or not current.keys.fullmatch(entry):
        return None
    return current.count_pin_attempt(call, entry)


def _answer(
    *,
    call_sid: str,
    caller: str,
    trusted: bool,
    step_name: str,
    prompt_number: int | None,
    keys: str | None,
    called: str,
    line: str | None,
    locked: bool,
    waited: bool,
    pin_attempt: object | None = None,
    sent_ahead: CallAhead | None = None,
) -> Reply:
    named = STEPS.get(step_name)
    entry = _entry(named, keys) if named is not None else None
    questions = _read_with_call(named, entry) if named is not None and not locked else ()
    call = _find(
        call_sid,
        caller=caller,
        locked=locked,
        line=line,
        questions=questions,
        entry=entry or "",
        sent_ahead=sent_ahead,
    )
    if call is not None:
        _ahead(call, prompt_number, waited=waited)
    if call is None:
        # A call we do not know (state purged, or a replayed URL): start over.
        return _start_call(
            call_sid=call_sid,
            caller=caller,
            trusted=trusted,
            greeting=START_AGAIN,
            deposit_line=_on_deposit_line(step_name),
        )
    # Which prompt was answered with what, keyed with SECRET_KEY so that the
    # stored digest gives away no PIN: Twilio's retry is the same URL, same keys.
    answer = _digest(f"{step_name}:{prompt_number}:{keys!r}")
    elsewhere = call.last_notices.get("dial") or call.last_notices.get("pay")
    if call.ended or (step_name, prompt_number) != (call.step, call.prompt_number) or elsewhere:
        if answer == call.last_answer:
            return _replay(call)
        _restart(call)
        return _ask(call, [START_AGAIN], outcome="stale")

    current = STEPS.get(call.step)
    if current is None or (current.signed_in_only and not call.signed_in):
        _restart(call)
        return _ask(call, [START_AGAIN], outcome="stale")

    call.last_answer = answer
    entry = _entry(current, keys)
    # A second 0 reaches staff only straight after the help that offered it.
    staff_offered, call.staff_offered = call.staff_offered, False
    with speaking(call):
        if entry is None:
            return _empty(call, current)
        if len(entry) > LONGEST_ENTRY:
            return _wrong_keys(call, current, current.wrong_keys)
        if entry == HELP_KEY:
            if staff_offered and settings.STAFF_PHONE_NUMBER:
                return _dial_staff(call, called)
            return _help(call, current)
        if entry == BACK_KEY and call.signed_in:
            return _to_main_menu(call, [current.abandoned] if current.name != MAIN_MENU else [], outcome="star")
        if entry == BACK_KEY and call.deposit_line and current.name != _first_step(call):
            # On the deposit line, * starts the deposit over (inside <Pay>, Twilio's own * ends the payment).
            _restart(call)
            return _ask(call, [current.abandoned or START_AGAIN], outcome="star")
        if (
            entry == LANGUAGE_KEY
            and current.takes_language_key
            and not call.signed_in
            and len(settings.IVR_LANGUAGES) > 1
        ):
            return _switch_language(call, current)
        if not current.keys.fullmatch(entry):
            return _wrong_keys(call, current, current.wrong_keys)
        call.timeouts = 0
        call.pin_attempt = pin_attempt
        return _take(call, current, current.answer(call, entry))


def _on_line(call: CallSession, line: str | None) -> bool:
    """Whether a request signed for `line` (ivr.decorators.signed_line) may open this call; None: either."""
    return line is None or call.deposit_line == (line == "deposit")


def _find(
    call_sid: str,
    *,
    caller: str,
    locked: bool,
    line: str | None = None,
    questions: tuple[Question, ...] = (),
    entry: str = "",
    sent_ahead: CallAhead | None = None,
) -> CallSession | None:
    """The call, if it is this caller's; unlocked, a miss is retried locked (starting over writes a new call).

    NotThisLine when the request was signed by the other line's token: it neither opens nor restarts the call.
    questions (unlocked only): read with the call, for entry, in the same statement (Step.read_with_call).
    sent_ahead: that same read, already sent (read_call_ahead), taken once.
    """
    if sent_ahead is not None and not locked and sent_ahead.reads(call_sid, questions, entry=entry):
        call = sent_ahead.call()
    elif questions:
        call = CallSession.find_with(call_sid, questions, entry=entry, now=timezone.now())
    else:
        call = CallSession.find(call_sid, locked=locked)
    if call is not None and not _on_line(call, line):
        raise NotThisLine
    if call is None or call.caller != caller:
        if not locked:
            raise CallMoved
        return None
    # Unlocked, the write-back must find the call where it was read.
    call.read_at_prompt = None if locked else call.prompt_number
    return call


def _digest(answer: str) -> str:
    return salted_hmac("ivr.answer", answer, algorithm="sha256").hexdigest()


def _entry(current: Step, keys: str | None) -> str | None:
    """The entry as a step reads it; None when empty, however Twilio delivered it.

    Twilio leaves finishOnKey out of Digits; some clients send it anyway, and a
    lone "#" may come as "#", as "", or as no request at all (the <Redirect>).
    """
    if keys and current.finish_on_key and keys.endswith(current.finish_on_key):
        keys = keys[: -len(current.finish_on_key)]
    return keys or None


def _take(call: CallSession, current: Step, outcome: Outcome, *, note: str = "", silences: int = 0) -> Reply:
    """Carry out what a step decided. note says, in the log, how the answer came (never its keys)."""
    note = f"{note}, " if note else ""
    if isinstance(outcome, Goodbye):
        return _goodbye(call, outcome.message, outcome=f"{note}goodbye")
    if isinstance(outcome, Again):
        if outcome.strike:
            return _wrong_keys(call, current, outcome.notice)
        return _refused(call, current, outcome.notice)
    if isinstance(outcome, Pay):
        return _pay(call, outcome.deposit_id)
    call.go_to(outcome.name)
    call.timeouts = silences
    return _ask(call, [outcome.notice] if outcome.notice else [], outcome=f"{note}to {outcome.name}")


def speaking(call: CallSession) -> translation.override:
    """The call's language for gettext, the first offered one until the caller chooses."""
    return translation.override(call.language or settings.IVR_LANGUAGES[0])


def _empty(call: CallSession, current: Step) -> Reply:
    """Silence, or a lone "#": where the step leads it, counted toward three silences in a row."""
    call.timeouts += 1
    led = current.silence(call)
    if isinstance(led, Goto) and not led.counts_silence:
        return _take(call, current, led, note="empty")
    if led is None or isinstance(led, Goto):
        if call.timeouts >= STRIKES:
            return _three_strikes(call, current, [], goodbye=GOODBYE_SILENCE, outcome="silent three times")
        if led is None:
            return _ask(call, [NOTHING_HEARD], outcome="no input", repeat=True)
        return _take(call, current, led, note="empty", silences=call.timeouts)
    return _take(call, current, led, note="empty")


def _wrong_keys(call: CallSession, current: Step, notice: Words) -> Reply:
    """An entry the prompt does not take: a strike."""
    call.timeouts = 0
    call.invalid_entries += 1
    if call.invalid_entries < STRIKES:
        return _ask(call, [notice], outcome="wrong keys", repeat=True)
    if current.after_three_wrong and not call.signed_in:
        call.go_to(current.after_three_wrong)
        return _ask(call, [notice], outcome=f"wrong keys three times, to {current.after_three_wrong}")
    return _three_strikes(call, current, [notice], goodbye=GOODBYE_TOO_MANY, outcome="wrong keys three times")


def _refused(call: CallSession, current: Step, notice: Words) -> Reply:
    """An answer understood and refused with a reason: no strike, but not forever either."""
    call.timeouts = 0
    call.refusals += 1
    if call.signed_in:
        limit = None if current.name == MAIN_MENU else STRIKES
    else:
        limit = REFUSALS_BEFORE_SIGN_IN
    if limit is None or call.refusals < limit:
        return _ask(call, [notice], outcome="refused", repeat=True)
    return _three_strikes(call, current, [notice], goodbye=GOODBYE_TOO_MANY, outcome=f"refused {limit} times")


def _three_strikes(call: CallSession, current: Step, notices: list[Words], *, goodbye: Words, outcome: str) -> Reply:
    """Enough at this prompt: a signed-in caller goes back to the main menu, told what did not happen; others hear goodbye."""
    if call.signed_in and current.name != MAIN_MENU:
        return _to_main_menu(call, [*notices, current.abandoned], outcome=f"{outcome}, to {MAIN_MENU}")
    return _goodbye(call, [*notices, goodbye], outcome=outcome)


def _to_main_menu(call: CallSession, notices: list[Words], *, outcome: str) -> Reply:
    call.scratch = {}
    call.go_to(MAIN_MENU)
    return _ask(call, notices, outcome=outcome)


def _help(call: CallSession, current: Step) -> Reply:
    """0: what this prompt wants, how to reach staff, then the prompt again. Never a strike."""
    call.timeouts = 0
    lines = [current.help]
    if call.signed_in and current.name != MAIN_MENU:
        several_digits = current.num_digits != 1 and current.finish_on_key == "#"
        lines.append(BACK_WITH_STAR_POUND if several_digits else BACK_WITH_STAR)
    if settings.STAFF_PHONE_NUMBER:
        lines.append(PRESS_0_FOR_STAFF)
        call.staff_offered = True
    else:
        lines.append(ASK_STAFF)
    return _ask(call, [" ".join(str(line) for line in lines if str(line))], outcome="help", repeat=True)


def _switch_language(call: CallSession, current: Step) -> Reply:
    """9 before sign-in: the other language at once, or the language menu when more than two are offered."""
    if len(settings.IVR_LANGUAGES) > 2:
        call.go_to(DEPOSIT_LANGUAGE_MENU if call.deposit_line else LANGUAGE_MENU)
        return _ask(call, [], outcome=f"to {call.step}")
    call.language = other_language(call.language)
    call.go_to(current.name)
    return _ask(call, [], outcome="language switched")


def _dial_staff(call: CallSession, called: str) -> Reply:
    """The second 0: connect to STAFF_PHONE_NUMBER; Twilio posts how it went to staff_call_url."""
    call.prompt_number += 1
    call.last_notices = {"dial": called or True}
    _save(call)
    return Reply(_render_dial(call), "to staff")


def staff_call_url(prompt_number: int) -> str:
    return f"{settings.BASE_URL}{_staff_call_path()}?n={prompt_number}"


@lru_cache(maxsize=1)
def _staff_call_path() -> str:
    return reverse("ivr:staff_call")


def _render_dial(call: CallSession) -> VoiceResponse:
    called = call.last_notices.get("dial")
    return twiml.dial_staff(
        number=settings.STAFF_PHONE_NUMBER,
        action=staff_call_url(call.prompt_number),
        caller_id=called if isinstance(called, str) else "",
        time_limit=settings.STAFF_CALL_MINUTES * 60,
        greeting=CONNECTING_TO_STAFF,
    )


def staff_call_ended(
    *, call_sid: str, caller: str, trusted: bool, prompt_number: int | None, status: str, line: str | None = None
) -> Reply:
    """Twilio's <Dial> action: the call to staff is over; back to the prompt the caller was at.

    status is Twilio's DialCallStatus; each is answered with a calm sentence. A <Dial> that fails at once
    may come back before the write-back of the prompt that dialled: waited for (_after_write_back).
    """

    def attempt(waited: bool) -> Reply:
        with transaction.atomic():
            call = _find(call_sid, caller=caller, locked=True, line=line)
            if call is None:
                return _start_call(call_sid=call_sid, caller=caller, trusted=trusted, greeting=START_AGAIN)
            _ahead(call, prompt_number, waited=waited)
            answer = _digest(f"staff call:{prompt_number}:{status!r}")
            if (elsewhere := _not_awaited(call, answer, prompt_number=prompt_number, handed_to="dial")) is not None:
                return elsewhere
            call.last_answer = answer
            with speaking(call):
                notice = STAFF_CALL_ENDED.get(status, STAFF_CALL_ENDED["failed"])
                return _ask(call, [notice], outcome=f"staff call {status[:20] or 'unknown'}", repeat=True)

    return _after_write_back(attempt)


def _not_awaited(call: CallSession, answer: str, *, prompt_number: int | None, handed_to: str) -> Reply | None:
    """For Twilio's report of a verb the call was handed to (handed_to: "dial" or "pay"): the same words again
    for its retry, the start again for a stale or copied URL; None when it is the report the call awaits."""
    if call.ended or prompt_number != call.prompt_number or not call.last_notices.get(handed_to):
        if answer == call.last_answer:
            return _replay(call)
        _restart(call)
        return _ask(call, [START_AGAIN], outcome="stale")
    return None


def _pay(call: CallSession, deposit_id: int) -> Reply:
    """Hand the call to <Pay>: card digits go to Twilio and its connector, never here. Back at payment_made."""
    call.prompt_number += 1
    call.last_notices = {"pay": deposit_id}
    _save(call, at_once=True)  # before Twilio has the <Pay>: its action request finds it written
    return Reply(_render_pay(call), "to pay")


def payment_url(prompt_number: int, deposit_id: int) -> str:
    # The deposit is named too: its result is recorded even when the call's state is gone
    # (the caller hung up while the card was being charged, and the status callback came first).
    return f"{settings.BASE_URL}{_payment_path()}?n={prompt_number}&d={deposit_id}"


@lru_cache(maxsize=1)
def _payment_path() -> str:
    return reverse("ivr:deposit_paid")


def _render_pay(call: CallSession) -> VoiceResponse:
    with speaking(call):
        deposit_id = call.last_notices["pay"]
        return STEPS[call.step].pay(call, deposit_id, payment_url(call.prompt_number, deposit_id))


def payment_made(
    *,
    call_sid: str,
    caller: str,
    trusted: bool,
    prompt_number: int | None,
    result: dict[str, str],
    line: str | None = None,
) -> Reply:
    """Twilio's <Pay> action request: what the payment did, for the step that started it to take.

    result holds the request's fields a step may read (Result, PaymentConfirmationCode, the card's
    type and masked number). Twilio's retry of the request (the same prompt and the same fields)
    hears the same answer again; the step's service credits a deposit once whatever comes. The <Pay>
    prompt is written before Twilio has it (_pay), so no write-back is waited for here.
    """
    with transaction.atomic():
        call = _find(call_sid, caller=caller, locked=True, line=line)
        if call is None:
            # The call is over (its status callback came first): the payment is recorded already (the
            # view settles it by the deposit the URL names); nobody is left to hear a prompt, and no
            # new call state, holding the caller's number, is written for a call that has ended.
            response = VoiceResponse()
            response.hangup()
            return Reply(response, "unknown call")
        answer = _digest(f"pay:{prompt_number}:{sorted(result.items())!r}")
        if (elsewhere := _not_awaited(call, answer, prompt_number=prompt_number, handed_to="pay")) is not None:
            return elsewhere
        call.last_answer = answer
        current, deposit_id = STEPS[call.step], call.last_notices["pay"]
        with speaking(call):
            return _take(call, current, current.paid(call, deposit_id, result))


def _on_deposit_line(step_name: str) -> bool:
    named = STEPS.get(step_name)
    return bool(named is not None and getattr(named, "deposit_line", False))


def _goodbye(call: CallSession, message: Words | list[Words], *, outcome: str) -> Reply:
    with speaking(call):
        lines = [str(line) for line in (message if isinstance(message, list) else [message]) if str(line)]
        call.ended = timezone.now()
        call.account = None
        # The words said, so that Twilio's retry of this request hears them again.
        call.scratch = {"goodbye": lines}
        _save(call)
        return Reply(twiml.goodbye(*lines), outcome)


def _replay(call: CallSession) -> Reply:
    """Twilio's retry of an answer already taken: the same prompt again, nothing new written."""
    with speaking(call):
        if call.ended:
            return Reply(twiml.goodbye(*call.scratch.get("goodbye", [str(_("Goodbye."))])), "replay")
        said = call.last_notices or {}
        if said.get("dial"):
            return Reply(_render_dial(call), "replay")
        if said.get("pay"):
            return Reply(_render_pay(call), "replay")
        return Reply(_render(call, said.get("notices", []), repeat=said.get("repeat", False)), "replay")


def _ask(call: CallSession, notices: list[Words], *, outcome: str, repeat: bool = False) -> Reply:
    """Save the call at its next prompt and render it; repeat: the same prompt again, after a notice."""
    call.prompt_number += 1
    with speaking(call):
        notices = [str(notice) for notice in notices if str(notice)]
        call.last_notices = {"notices": notices, "repeat": repeat} if notices or repeat else {}
        _save(call)
        return Reply(_render(call, notices, repeat=repeat), outcome)


def _save(call: CallSession, *, at_once: bool = False) -> None:
    """Write the call's state; a step that moves no money writes it after the answer, unless at_once."""
    call.updated = timezone.now()
    if call._state.adding:
        # ON CONFLICT DO NOTHING: a unique violation would put the CallSid in PostgreSQL's log. Outside a
        # transaction (a new call's first webhook) it commits without waiting for the disk, as the
        # optimistic write-back below does, and with the same risk: a database crash may lose it.
        if not insert_unless_conflict(call, asynchronous_commit=True):
            raise CallAlreadyStarted
        return
    # Everything a step may change, and not the CallSid and caller it never does.
    read_at = getattr(call, "read_at_prompt", None)
    if read_at is None:
        update_where(call, CallSession.STEP_FIELDS)
    # Written back optimistically (a step that moves no money and counts no PIN), after the answer has
    # gone (myibot.after_answer: the caller does not wait for it), and committed without waiting for the
    # disk: a database crash may lose the last prompt moves, and the caller's next entry then hears
    # "Let's start again". Outside a webhook it runs here, and CallMoved has the step run again locked.
    else:
        write_back = update_later(
            call, CallSession.STEP_FIELDS, where={"prompt_number": read_at}, asynchronous_commit=True
        )
        if at_once:
            _written_back(write_back)
        else:
            after_answer(partial(_written_back, write_back), what="the call's write-back")


def _written_back(write_back: Callable[[], int]) -> None:
    if not write_back():
        raise CallMoved


def _render(
    call: CallSession, notices: list[Words] | tuple[Words, ...] = (), *, repeat: bool = False
) -> VoiceResponse | str:
    """The call's prompt as TwiML, after notices; written once per prompt, language and words (_prompts)."""
    current = STEPS[call.step]
    notices = tuple(str(notice) for notice in notices if str(notice))
    lines = current.prompt(call)
    if current.takes_language_key and not call.signed_in and (repeat or call.timeouts or call.invalid_entries):
        # A caller who missed the language prompt, or did not follow this one: 9 is another language.
        lines += [language_offer(code, LANGUAGE_KEY) for code in other_languages(call.language)]
    action = step_url(current.name, call.prompt_number)
    if current.says_digits or any(isinstance(line, Code) for line in lines):
        # A code read out (a confirmation, a registration, a recipient's) or a card's digits are said once:
        # never kept in memory, even written.
        return _prompt_twiml(current, notices, lines, repeat=repeat, action=action)
    key = (
        current.name,
        translation.get_language(),
        notices,
        repeat,
        tuple(line if isinstance(line, InLanguage) or line is PAUSE else str(line) for line in lines),
    )
    template = _prompts.get(key)
    if template is None:
        template = twiml.Template(_prompt_twiml(current, notices, lines, repeat=repeat, action=twiml.Template.ACTION))
        if len(_prompts) >= PROMPTS_KEPT:
            _prompts.clear()
        _prompts[key] = template
    return template.fill(action)


# Prompts written once: (step, language, notices, repeat, lines) -> its template. A balance or an amount
# said makes one of its own, so the number kept is bounded; any setting changed (a test's) empties it.
_prompts: dict[tuple, twiml.Template] = {}
PROMPTS_KEPT = 512


@receiver(setting_changed)
def _forget_prompts(**kwargs) -> None:
    _prompts.clear()


def _prompt_twiml(
    current: Step, notices: tuple[str, ...], lines: list[Line], *, repeat: bool, action: str
) -> VoiceResponse:
    outside = [line for line in lines if isinstance(line, Code) and line.uninterrupted]
    lines = [line for line in lines if line not in outside]
    response = VoiceResponse()
    if outside and not repeat:
        # What must be heard whole comes before the <Gather>, after the notices that lead to it.
        for notice in notices:
            twiml.say(response, notice)
        for line in outside:
            _speak(response, line)
        notices = ()
    with response.gather(
        input="dtmf",
        action=action,
        method="POST",
        timeout=settings.IVR_GATHER_TIMEOUT,
        finish_on_key=current.finish_on_key,
        action_on_empty_result=True,
        **({"num_digits": current.num_digits} if current.num_digits else {}),
    ) as gather:
        for notice in notices:
            twiml.say(gather, notice)
        if notices:
            # A breath between what happened and what to do next, for a tired caller on a bad line.
            twiml.pause(gather)
        for line in lines:
            _speak(gather, line)
    # Twilio posts every entry to action, empty ones too; a client that does
    # not (or a call whose action failed) falls through to this, as silence.
    response.redirect(f"{action}&no_input=1", method="POST")
    return response


def _speak(verb, line: Line) -> None:
    if line is PAUSE:
        twiml.pause(verb)
    elif isinstance(line, InLanguage):
        with translation.override(line.language):
            twiml.say(verb, str(line.text) % dict(line.params), line.language)
    elif isinstance(line, Code):
        twiml.say_digits(verb, line.before, line.digits)
    else:
        twiml.say(verb, line)
