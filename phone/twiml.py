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
- Any other verb (<Dial>, <Record>, ...) is not simulated: Unsupported, which
  the call skips and names in its transcript.

Strict: a document that is not TwiML, an attribute Twilio could not read, or a
method other than POST (our server takes POST only) raises CallFailed. How
long speech, pauses and breaks take comes from phone.clock.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin

from phone import clock


class CallFailed(Exception):
    """The server answered something Twilio could not follow (not TwiML, a loop, a GET)."""


@dataclass(frozen=True)
class Audio:
    """One <Say>, <Pause> or <Play> as the caller hears it."""

    kind: str  # "say", "pause" or "play"
    text: str  # say: the words, SSML rendered (a break is a space); play: the URL; pause: ""
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


Verb = Audio | Gather | Redirect | Hangup | Unsupported


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
