"""The phone's series in Prometheus: webhooks answered and how long each took, by step and outcome (docs/METRICS.md).

Label values come from a fixed set, never from a request: a step name, a
Twilio call status, or an outcome the state machine wrote, each checked
against what the code can produce. Anything else is "other", so that a forged
or new value never makes a new series (and never carries what a caller typed).
"""

from __future__ import annotations

import re

from prometheus_client import Counter, Histogram

from ivr.machine import STEPS
from myibot import metrics

# Twilio gives up on a webhook after 15 s; the app stops starting queries
# after WEBHOOK_DEADLINE_SECONDS (10). Fine buckets below 1 s, where nearly
# every webhook lands (docs/PERFORMANCE.md), and 10 and 15 to see the edge.
WEBHOOK_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)

WEBHOOKS = Counter("myibot_webhooks", "Twilio webhooks answered, by step and how the step ended.", ["step", "outcome"])
WEBHOOK_SECONDS = Histogram(
    "myibot_webhook_seconds",
    "Seconds to answer a Twilio webhook, signature check included.",
    ["step"],
    buckets=WEBHOOK_SECONDS_BUCKETS,
)

OTHER = "other"
# Twilio's CallStatus values (the status callback's step is "status <CallStatus>").
CALL_STATUSES = frozenset(
    {"queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"}
)
# Steps that are not prompts: the fallback URL, and "-" for a view that failed before naming its step.
NOT_PROMPTS = frozenset({"fallback", "-", "staff call", "deposit", "pay", "pay progress"})
# What ivr/views.py, ivr/machine.py and ivr/decorators.py write as an outcome, apart from the moves below.
OUTCOMES = frozenset(
    {
        "started",
        "stale",
        "replay",
        "no input",
        "silent three times",
        "wrong keys",
        "wrong keys three times",
        "refused",
        "refused 5 times",
        "help",
        "star",
        "language switched",
        "to staff",
        "to pay",
        "progress",
        "staff call completed",
        "staff call busy",
        "staff call no-answer",
        "staff call canceled",
        "staff call failed",
        "no CallSid",
        "noted",
        "unknown call",
        "another caller: kept",
        "forgotten",
        "apology",
        "database too slow",
        "failed",
    }
)
# A step's answer taken: "goodbye" or "to <step>", perhaps after how it came ("empty, to new_or_member_id");
# or three strikes sending the call on ("wrong keys three times, to pin", "refused 3 times, to menu").
MOVE = re.compile(
    r"(?:empty, )?(?:goodbye|to (?P<to>[a-z_]+))"
    r"|(?:wrong keys three times|silent three times|refused 3 times), to (?P<on>[a-z_]+)"
)


def step_label(step: str) -> str:
    """The step as a label: a step name, "fallback", "-", "status <CallStatus>", else "other"."""
    if step in NOT_PROMPTS or step in STEPS:
        return step
    if step.startswith("status "):
        return step if step.removeprefix("status ") in CALL_STATUSES else "status other"
    return OTHER


def outcome_label(outcome: str) -> str:
    """The outcome as a label, when it is one the code writes (a move names a real step), else "other"."""
    if outcome in OUTCOMES:
        return outcome
    move = MOVE.fullmatch(outcome)
    if move and (move["to"] or move["on"] or "") in {"", *STEPS}:
        return outcome
    return OTHER


def webhook_answered(step: str, outcome: str, seconds: float) -> None:
    """One webhook answered: its step, how it ended, how long it took (for Prometheus)."""

    def count() -> None:
        step_as_label = step_label(step)
        WEBHOOKS.labels(step=step_as_label, outcome=outcome_label(outcome)).inc()
        WEBHOOK_SECONDS.labels(step=step_as_label).observe(seconds)

    # Not on commit: the decorator calls this after the step's transaction ended, either way.
    metrics.record(count)


PAY_PROGRESS = Counter(
    "myibot_deposit_pay_progress",
    "<Pay>'s progress on the deposit line (its statusCallback), by the card field it was at and the error it "
    "reported: where families give up typing a card.",
    ["field", "error"],
)
PAY_FIELDS = frozenset({"payment-card-number", "expiration-date", "security-code", "postal-code", "payment-processing"})
PAY_ERRORS = frozenset(
    {
        "timeout",
        "invalid-card-number",
        "invalid-card-type",
        "invalid-date",
        "invalid-security-code",
        "invalid-postal-code",
        "input-matching-failed",
    }
)


def pay_progress(field: str, error: str) -> None:
    """One progress request of <Pay>; field and error as Twilio names them (others count as "other")."""
    field = field if field in PAY_FIELDS else (OTHER if field else "none")
    error = error if error in PAY_ERRORS else (OTHER if error else "none")
    metrics.record(PAY_PROGRESS.labels(field=field, error=error).inc)
