"""The virtual clock: what a call costs the caller, in seconds counted, never slept.

The simulator never sleeps. It counts the seconds a real caller would spend:
speech at 150 words a minute, pauses and SSML breaks, and above all the seconds
spent waiting after an entry for Twilio's timeout; at <Pay>, typing the card
and the connector charging it too. The figures here are
estimates, the same for every prompt, so comparisons between prompts and
between versions hold.

phone.twiml times each <Say> and <Pause> with these figures as it reads them;
phone.call decides when the caller waits for a timeout and adds everything up
in Totals: SimulatedCall.totals holds the figures, the summary line of
`manage.py call` prints them, and every transcript Event carries them as they
stood when it happened, so a test can ask what the caller went through before
hearing something (`call.totals_before("balance|saldo")`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

# Speech rate: 150 words a minute (0.4 s a word), about what Polly's voices read a prompt at.
WORDS_PER_SECOND = 2.5
# <break strength="..."/> in seconds, as Polly roughly renders them; a bare
# <break/> is "medium". Estimates, like the speech rate.
BREAK_SECONDS = {"none": 0.0, "x-weak": 0.0, "weak": 0.25, "medium": 0.5, "strong": 0.75, "x-strong": 1.25}
# <prosody rate="..."> as a factor of the normal rate ("80%" is 0.8).
PROSODY_RATES = {"x-slow": 0.6, "slow": 0.8, "medium": 1.0, "fast": 1.25, "x-fast": 1.5}
# A key of a card typed at <Pay>: a caller reads the card off and types about two keys a second.
KEY_SECONDS = 0.5
# <Pay> charging the card through its connector, after the last step: a second or two.
CHARGING_SECONDS = 2.0
# <Pay>'s own words for a step we gave no <Prompt> for: their text is not ours to know, their length about a sentence.
TWILIO_PROMPT_SECONDS = 3.0
# A word, as the clock counts them: "PIN", "4", "don't", "número".
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def words(text: str) -> int:
    return len(WORD.findall(text))


def speech_seconds(text: str) -> float:
    """How long text takes to say at the normal rate, to the hundredth of a second."""
    return round(words(text) / WORDS_PER_SECOND, 2)


@dataclass(frozen=True)
class Totals:
    """What the call has cost the caller so far, on the virtual clock."""

    requests: int = 0  # POSTs made: webhooks, fallbacks, <Pay>'s action, the status callback
    entries: int = 0  # <Gather>s and <Pay> steps answered with keys (finishOnKey pressed alone counts)
    keys_lost: int = 0  # keys typed during verbs outside a <Gather>: Twilio drops them
    words: int = 0  # words heard; words cut off by a key are not
    # Waiting after entries for the timeout: 0 when numDigits or finishOnKey ended them,
    # the timeout after a partial entry or a lone finishOnKey Twilio ignores (pound "c").
    wait_seconds: float = 0.0
    # (<Pay>: the timeout after a step's keys when no # ended them: <Pay> waits for another key.)
    silence_seconds: float = 0.0  # waiting at prompts the caller did not answer
    typing_seconds: float = 0.0  # typing a card at <Pay>, at KEY_SECONDS a key
    charging_seconds: float = 0.0  # <Pay> charging the card
    seconds: float = 0.0  # the whole call: speech, pauses, breaks, waits, typing a card and charging it

    def plus(self, **more: float) -> Totals:
        """These totals with more added: plus(words=3, seconds=1.2)."""
        return replace(self, **{name: getattr(self, name) + value for name, value in more.items()})
