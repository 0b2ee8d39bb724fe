"""The call as a state machine: one mechanism that runs every step.

A step (ivr/steps/) says what it asks, which keys it takes and where each
answer leads. This module does everything steps have in common: loading and
locking the call's state, telling a real answer from a retry or a stale URL,
counting silences and wrong keys (three of either at one prompt ends the call,
as FreeSWITCH's max-timeouts and max-failures do), and building the TwiML with
an explicit <Redirect> after every <Gather>, in the caller's language.

No dead air after a key: every <Gather> has actionOnEmptyResult="true", so
Twilio posts even an empty entry at once, and tells us with FinishedOnKey
whether the caller pressed the prompt's finishOnKey alone ("#") or said
nothing. Notices are nested inside the next <Gather>, so that keys pressed
while they play are kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from twilio.twiml.voice_response import VoiceResponse

from accounts import activity
from ivr import twiml
from ivr.models import CallSession
from myibot.db import insert_unless_conflict, update_where

STRIKES = 3
NOTHING_HEARD = _("We did not hear anything.")
GOODBYE_SILENCE = _("We did not hear from you. Please call again when you are ready. Goodbye.")
GOODBYE_WRONG_KEYS = _("Sorry, we could not understand your entries. Please call again later. Goodbye.")
START_AGAIN = _("Let's start again.")
PAUSE = object()  # a one-second pause between lines of a prompt

# What a caller hears: a plain or lazily translated string.
Words = str | Promise


@dataclass(frozen=True)
class InLanguage:
    """A line said in a given language and its voice, whatever the call's ("Para español, oprima 2.")."""

    language: str
    text: Words
    params: tuple[tuple[str, object], ...] = ()  # filled in after translating, in that language


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
    """The answer is taken: move to a step (a new prompt), saying notice first."""

    step: str
    notice: Words = ""


@dataclass(frozen=True)
class Again:
    """Ask the same prompt again after notice; a strike unless strike=False."""

    notice: Words
    strike: bool = True


@dataclass(frozen=True)
class Goodbye:
    message: Words


Outcome = Goto | Again | Goodbye


class Step:
    """One prompt of the call. Subclasses are registered by name with @step."""

    name: ClassVar[str]
    keys: ClassVar[re.Pattern[str]]  # the entries this prompt accepts, ASCII only
    wrong_keys: ClassVar[Words]  # said when an entry does not match keys
    num_digits: ClassVar[int | None] = None
    # Ends an entry at once; pressed alone it arrives as itself (keys == "#"),
    # and the step's keys pattern decides whether it is an answer.
    finish_on_key: ClassVar[str] = "#"
    signed_in_only: ClassVar[bool] = True
    # Counts PINs, creates an account or moves money: the call stays locked for
    # the whole step (see answer_prompt); the others write back optimistically.
    locks_call: ClassVar[bool] = False
    # Where three wrong entries lead; None ends the call.
    after_three_wrong: ClassVar[str | None] = None

    def prompt(self, call: CallSession) -> list[Line]:
        raise NotImplementedError

    def answer(self, call: CallSession, keys: str) -> Outcome:
        raise NotImplementedError

    def silence(self, call: CallSession) -> Outcome | None:
        """Where silence leads, when it is an answer here; None counts it toward the three."""
        return None


STEPS: dict[str, Step] = {}
# Which step a call starts at: the PIN prompt for a trusted home number, the
# member-ID prompt for everyone else. Registered by ivr.steps with @first_step.
_first_step: Callable[[CallSession], str] | None = None


def step(cls: type[Step]) -> type[Step]:
    STEPS[cls.name] = cls()
    return cls


def first_step(choose: Callable[[CallSession], str]) -> Callable[[CallSession], str]:
    global _first_step
    _first_step = choose
    return choose


@dataclass
class Reply:
    """What to answer Twilio, and what to log about it (never the keys)."""

    twiml: VoiceResponse
    outcome: str


def step_url(step_name: str, prompt_number: int) -> str:
    """Where a prompt's keys go; its no-input <Redirect> adds &no_input=1."""
    return f"{settings.BASE_URL}{_step_path(step_name)}?n={prompt_number}"


@lru_cache(maxsize=64)
def _step_path(step_name: str) -> str:
    # Resolved once per step: reverse() walks the URLconf every time, on every webhook.
    return reverse("ivr:step", args=[step_name])


def start_call(*, call_sid: str, caller: str, trusted: bool, greeting: Words) -> Reply:
    """The first prompt, for a new call or Twilio's retry of its first webhook.

    caller is the E.164 number or "" when withheld; trusted says whether the
    caller ID may open PIN-only sign-in.
    """
    with transaction.atomic():
        try:
            return _start_call(call_sid=call_sid, caller=caller, trusted=trusted, greeting=greeting)
        except CallAlreadyStarted:
            # A retry of this webhook inserted the call between our look and
            # our insert; looking again (locked) waits for it and finds it.
            return _start_call(call_sid=call_sid, caller=caller, trusted=trusted, greeting=greeting)


class CallAlreadyStarted(Exception):
    pass


def _start_call(*, call_sid: str, caller: str, trusted: bool, greeting: Words) -> Reply:
    call = CallSession.find(call_sid, locked=True)
    new = call is None
    if new:
        # Inserted with its first prompt in one statement (see _save).
        call = CallSession(call_sid=call_sid, caller=caller, caller_trusted=trusted)
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


def answer_prompt(
    *,
    call_sid: str,
    caller: str,
    trusted: bool,
    step_name: str,
    prompt_number: int | None,
    keys: str | None,
    finished_on_key: str = "",
) -> Reply:
    """Take the caller's keys for the prompt a URL names.

    keys is None for the <Redirect> after a <Gather> (silence, as a client
    without actionOnEmptyResult sends it); "" with finished_on_key "" is
    silence too, and "" with the prompt's finishOnKey is that key alone.

    A step that only reads (a menu, the balance, an amount) runs without a
    transaction and writes the call back only if it is still at the prompt it
    read (UPDATE ... WHERE prompt_number = n): two round trips. If another
    request moved the call first (Twilio's retry of this one, most likely), it
    looks again, locked, and finds itself a retry. A step that counts PINs,
    creates an account or moves money (Step.locks_call) holds the call's row
    locked for the whole step, so that a retry waits for its first attempt.
    """
    answer = dict(call_sid=call_sid, caller=caller, trusted=trusted, step_name=step_name, prompt_number=prompt_number,
                  keys=keys, finished_on_key=finished_on_key)
    named = STEPS.get(step_name)
    if named is not None and not named.locks_call:
        try:
            return _answer(**answer, locked=False)
        except CallMoved:
            pass
    with transaction.atomic():
        return _answer(**answer, locked=True)


class CallMoved(Exception):
    """The call left the prompt a step read before the step could write it back."""


def _answer(
    *, call_sid: str, caller: str, trusted: bool, step_name: str, prompt_number: int | None, keys: str | None,
    finished_on_key: str, locked: bool,
) -> Reply:
    call = CallSession.find(call_sid, locked=locked)
    if call is None or call.caller != caller:
        if not locked:
            raise CallMoved  # starting over writes a new call: under the lock
        # A call we do not know (state purged, or a replayed URL): start over.
        return _start_call(call_sid=call_sid, caller=caller, trusted=trusted, greeting=START_AGAIN)
    # Unlocked, the write-back must find the call where it was read.
    call.read_at_prompt = None if locked else call.prompt_number

    # Which prompt was answered with what, keyed with SECRET_KEY so that the
    # stored digest gives away no PIN: Twilio's retry is the same URL, same keys.
    answer = salted_hmac(
        "ivr.answer", f"{step_name}:{prompt_number}:{keys!r}:{finished_on_key!r}", algorithm="sha256"
    ).hexdigest()
    if call.ended or (step_name, prompt_number) != (call.step, call.prompt_number):
        if answer == call.last_answer:
            return _replay(call)
        _restart(call)
        return _ask(call, [START_AGAIN], outcome="stale")

    current = STEPS.get(call.step)
    if current is None or (current.signed_in_only and not call.signed_in):
        _restart(call)
        return _ask(call, [START_AGAIN], outcome="stale")

    call.last_answer = answer
    keys, alone = _normalize(current, keys, finished_on_key)
    with speaking(call):
        if keys is None:
            silent = current.silence(call)
            return _no_input(call) if silent is None else _take(call, silent, note="silence")
        if len(keys) > LONGEST_ENTRY or not current.keys.fullmatch(keys):
            return _wrong_keys(call, current.wrong_keys)
        call.timeouts = 0
        # The log says when a lone finishOnKey came (FinishedOnKey), never other keys.
        return _take(call, current.answer(call, keys), note="pound alone" if alone else "")


def _take(call: CallSession, outcome: Outcome, *, note: str = "") -> Reply:
    """Carry out what a step decided. note says, in the log, how the answer came (never its keys)."""
    note = f"{note}, " if note else ""
    if isinstance(outcome, Goodbye):
        return _goodbye(call, outcome.message, outcome=f"{note}goodbye")
    if isinstance(outcome, Again):
        if outcome.strike:
            return _wrong_keys(call, outcome.notice)
        return _ask(call, [outcome.notice], outcome=f"{note}again", repeat=True)
    call.go_to(outcome.step)
    return _ask(call, [outcome.notice] if outcome.notice else [], outcome=f"{note}to {outcome.step}")


def _normalize(current: Step, keys: str | None, finished_on_key: str) -> tuple[str | None, bool]:
    """The entry as the step reads it, None for silence; and whether it was finishOnKey alone."""
    if keys is None:
        return None, False
    if keys == "":
        # Twilio sends FinishedOnKey="#" for "#" pressed alone, empty after silence.
        if current.finish_on_key and finished_on_key == current.finish_on_key:
            return current.finish_on_key, True
        return None, False
    # Twilio leaves finishOnKey out of Digits; some clients send it anyway.
    if current.finish_on_key and keys.endswith(current.finish_on_key) and len(keys) > len(current.finish_on_key):
        keys = keys[: -len(current.finish_on_key)]
    return keys, False


def speaking(call: CallSession) -> translation.override:
    """The call's language for gettext, the first offered one until the caller chooses."""
    return translation.override(call.language or settings.IVR_LANGUAGES[0])


def _no_input(call: CallSession) -> Reply:
    call.timeouts += 1
    if call.timeouts >= STRIKES:
        return _goodbye(call, GOODBYE_SILENCE, outcome="silent three times")
    return _ask(call, [NOTHING_HEARD], outcome="no input", repeat=True)


def _wrong_keys(call: CallSession, notice: Words) -> Reply:
    call.timeouts = 0
    call.invalid_entries += 1
    if call.invalid_entries < STRIKES:
        return _ask(call, [notice], outcome="wrong keys", repeat=True)
    fallback = STEPS[call.step].after_three_wrong
    if fallback is None:
        return _goodbye(call, [notice, GOODBYE_WRONG_KEYS], outcome="wrong keys three times")
    call.go_to(fallback)
    return _ask(call, [notice], outcome=f"wrong keys three times, to {fallback}")


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
        return Reply(_render(call, said.get("notices", []), repeat=said.get("repeat", False)), "replay")


def _ask(call: CallSession, notices: list[Words], *, outcome: str, repeat: bool = False) -> Reply:
    """Save the call at its next prompt and render it; repeat: the same prompt again, after a notice."""
    call.prompt_number += 1
    with speaking(call):
        notices = [str(notice) for notice in notices if str(notice)]
        call.last_notices = {"notices": notices, "repeat": repeat} if notices or repeat else {}
        _save(call)
        return Reply(_render(call, notices, repeat=repeat), outcome)


def _save(call: CallSession) -> None:
    call.updated = timezone.now()
    if call._state.adding:
        # ON CONFLICT DO NOTHING: a unique violation would put the CallSid in PostgreSQL's log.
        if not insert_unless_conflict(call):
            raise CallAlreadyStarted
        return
    # Everything a step may change, and not the CallSid and caller it never does.
    read_at = getattr(call, "read_at_prompt", None)
    if read_at is None:
        update_where(call, CallSession.STEP_FIELDS)
    # Written back optimistically (a step that moves no money and counts no PIN), and
    # committed without waiting for the disk: a database crash may lose the last
    # prompt moves, and the caller's next entry then hears "Let's start again".
    elif not update_where(call, CallSession.STEP_FIELDS, where={"prompt_number": read_at}, asynchronous_commit=True):
        raise CallMoved


def _render(call: CallSession, notices: list[Words] | tuple[Words, ...] = (), *, repeat: bool = False) -> VoiceResponse:
    current = STEPS[call.step]
    action = step_url(current.name, call.prompt_number)
    notices = [notice for notice in notices if str(notice)]
    lines = current.prompt(call)
    outside = [line for line in lines if isinstance(line, Code) and line.uninterrupted]
    lines = [line for line in lines if line not in outside]
    response = VoiceResponse()
    if outside and not repeat:
        # What must be heard whole comes before the <Gather>, after the notices that lead to it.
        for notice in notices:
            twiml.say(response, notice)
        for line in outside:
            _speak(response, line)
        notices = []
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
