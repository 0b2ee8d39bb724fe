"""Prometheus metrics: the series, their labels, and the endpoint Fly's scraper reads (docs/METRICS.md).

Under gunicorn, gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before the app
is imported: prometheus_client then keeps every worker's values in files of
that directory, and gunicorn's master serves their sum on METRICS_ADDRESS,
port METRICS_PORT (`serve`). Anywhere else (runserver, tests, manage.py) the values live in the
process, in prometheus_client's default registry, and nothing is served.

Label values come from a fixed set, never from a request: a step name, a
Twilio call status, or an outcome the state machine wrote, each checked
against what the code can produce. Anything else is "other", so that a forged
or new value never makes a new series (and never carries what a caller typed).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

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
CALLS = Counter("myibot_calls", "Calls started (a new CallSid at /twilio/voice).")
SIGN_INS = Counter("myibot_sign_ins", "Callers signed in.")
SIGN_IN_FAILURES = Counter("myibot_sign_in_failures", "Sign-ins refused for a wrong PIN.")
LOCKS = Counter("myibot_locks", "Accounts locked after too many wrong PINs.")
SPRAYS = Counter("myibot_sprays", "Sign-in sprays: PIN-only entry suspended for 15 minutes.")
TRANSFERS = Counter("myibot_transfers", "Transfers submitted.")
TRANSFER_CENTS = Counter("myibot_transfer_cents", "Cents sent in submitted transfers.")

OTHER = "other"
# Twilio's CallStatus values (the status callback's step is "status <CallStatus>").
CALL_STATUSES = frozenset(
    {"queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"}
)
# Steps that are not prompts: the fallback URL, and "-" for a view that failed before naming its step.
NOT_PROMPTS = frozenset({"fallback", "-", "staff call"})
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


def _steps() -> dict:
    # Imported when first needed: ivr.machine imports accounts.activity, which imports this module.
    from ivr.machine import STEPS

    return STEPS


def step_label(step: str) -> str:
    """The step as a label: a step name, "fallback", "-", "status <CallStatus>", else "other"."""
    if step in NOT_PROMPTS or step in _steps():
        return step
    if step.startswith("status "):
        return step if step.removeprefix("status ") in CALL_STATUSES else "status other"
    return OTHER


def outcome_label(outcome: str) -> str:
    """The outcome as a label, when it is one the code writes (a move names a real step), else "other"."""
    if outcome in OUTCOMES:
        return outcome
    move = MOVE.fullmatch(outcome)
    if move and (move["to"] or move["on"] or "") in {"", *_steps()}:
        return outcome
    return OTHER


def record(what: Callable[[], object]) -> None:
    """Metrics never fail a call: a value that cannot be written (a full disk, say) is logged and dropped."""
    try:
        what()
    except Exception:
        logger.exception("a metric was not recorded")


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """A registry that adds up the values every process wrote to directory (dead workers' included)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def serve(port: int, directory: str, *, addr: str) -> WSGIServer:
    """Serve the sum of every worker's values on addr:port, from a thread of the calling process (gunicorn's master).

    addr is METRICS_ADDRESS: on Fly the machine's private address, where Fly's
    scraper reads it; never every interface unless someone sets 0.0.0.0.
    """
    server, _thread = start_http_server(port, addr=addr, registry=multiprocess_registry(directory))
    return server
