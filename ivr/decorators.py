"""The one decorator every Twilio webhook goes through."""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Protocol
from urllib.parse import urlparse

from django.conf import settings
from django.db import OperationalError, connection
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    add_port,
    remove_port,
)

from ivr import metrics, twiml
from ivr.machine import NotThisLine
from myibot import after_answer

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


class ReadsAhead(Protocol):
    """A view's read sent ahead (twilio_webhook's read_ahead): dropped unless the view took it."""

    def discard(self) -> None: ...


# A CallSid is "CA" and hex digits; anything else in one must not reach a log line.
_NOT_SID = re.compile(r"[^0-9A-Za-z]")
# What a Webhook Rule's SharedKey may sign with; anything else is refused, never guessed at.
SHARED_KEY_ALGORITHMS = frozenset({HMAC_SHA1, HMAC_SHA256})


@lru_cache(maxsize=8)
def _validators(*secrets: str) -> tuple[RequestValidator, ...]:
    """One validator per configured secret, built once (keyed by the secrets, so a changed setting is seen)."""
    # Each secret once: the deposit line's token is the account's own unless a subaccount has its own.
    return tuple(RequestValidator(secret) for secret in dict.fromkeys(secrets) if secret)


def _shared_key_algorithm(signature_settings: str) -> str | None:
    """The algorithm X-Twilio-Webhooks-Signature-Settings names ("key=...,algorithm=HMAC_SHA256"), if one we know."""
    for part in signature_settings.split(","):
        name, _, value = part.partition("=")
        if name.strip() == "algorithm":
            algorithm = value.strip().upper()
            return algorithm if algorithm in SHARED_KEY_ALGORITHMS else None
    return None


# Both numbers post here: the status callback and the voice fallback.
SHARED_PATHS = frozenset({"/twilio/status", "/twilio/fallback"})
MEMBERS, DEPOSIT = "members", "deposit"


def _deposit_line_only(path: str) -> bool:
    """The deposit line's own URLs: its first webhook, <Pay>'s action and the redirect after it, its prompts."""
    return path.startswith(("/twilio/deposit", "/twilio/step/deposit_"))


def signed_line(request: HttpRequest) -> str | None:
    """Which number's token signed a request that checked out: MEMBERS, DEPOSIT, or None when one token signs
    both (the deposit line on the main account, or a Webhook Rule's shared key).

    The machine opens only calls of that line (ivr.machine._find): a deposit-line token cannot restart or end
    a members' call, and the members' token opens no deposit-line call.
    """
    return getattr(request, "twilio_line", None)


def signature_refusal(request: HttpRequest) -> str | None:
    """Why a request is not Twilio's, or None when its X-Twilio-Signature checks out.

    Behind Fly's proxy the request arrives over plain HTTP on another host, so
    the URL is rebuilt from BASE_URL, as Twilio saw it. Without the signature
    settings header, Twilio signed with the account's Auth Token (HMAC-SHA1):
    TWILIO_AUTH_TOKEN, or TWILIO_SECONDARY_AUTH_TOKEN while a token is rotated
    (for a deposit line on a subaccount: TWILIO_DEPOSIT_AUTH_TOKEN, or
    TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN).
    With it, a Webhook Rule's SharedKey signed, with the algorithm the header
    names, and only TWILIO_WEBHOOK_SHARED_KEY is tried.
    """
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return "no signature"
    signature_settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
    url = settings.BASE_URL + request.get_full_path()
    if signature_settings is not None:
        algorithm = _shared_key_algorithm(signature_settings)
        if algorithm is None:
            return "unknown signature algorithm"
        validators = _validators(settings.TWILIO_WEBHOOK_SHARED_KEY)
        if not validators:
            return "shared-key signature but no TWILIO_WEBHOOK_SHARED_KEY"
        if any(_signed_with(validator, url, request.POST, signature, algorithm) for validator in validators):
            return None
        return "bad signature"
    members = [settings.TWILIO_AUTH_TOKEN, settings.TWILIO_SECONDARY_AUTH_TOKEN]
    deposit_token = settings.TWILIO_DEPOSIT_AUTH_TOKEN
    if deposit_token in members:
        # One account signs both numbers: the call's own line, stored when it started, is all there is.
        if any(_signed_with(validator, url, request.POST, signature, HMAC_SHA1) for validator in _validators(*members)):
            return None
        return "bad signature"
    # The deposit line's number sits on a PCI subaccount that signs with its own token: that token opens the
    # deposit line's URLs only, never the members' (sign-in, PINs, transfers), and the members' token none of its.
    deposit_path, shared = _deposit_line_only(request.path), request.path in SHARED_PATHS
    if not deposit_path and any(
        _signed_with(validator, url, request.POST, signature, HMAC_SHA1) for validator in _validators(*members)
    ):
        request.twilio_line = MEMBERS
        return None
    deposit_tokens = (deposit_token, settings.TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN)
    if (deposit_path or shared) and any(
        _signed_with(validator, url, request.POST, signature, HMAC_SHA1) for validator in _validators(*deposit_tokens)
    ):
        request.twilio_line = DEPOSIT
        return None
    return "bad signature" if not deposit_path else "not signed by the deposit line's token"


def _signed_with(validator: RequestValidator, url: str, params: object, signature: str, algorithm: str) -> bool:
    """Whether validator's secret signed the request.

    Twilio signs the URL as configured (BASE_URL + path + query): that one
    HMAC settles every genuine request. As RequestValidator.validate does (it
    always computes both), the URL with its default port, or without its
    port, is accepted too, since some Twilio products sign
    https://host:443/...; those are tried only when the first does not match.
    """

    def signs(candidate: str) -> bool:
        expected = validator.compute_signature(candidate, params, algorithm)
        return hmac.compare_digest(expected.encode(), signature.encode())

    if signs(url):
        return True
    parsed = urlparse(url)
    return any(signs(candidate) for candidate in {add_port(parsed), remove_port(parsed)} - {url})


def call_label(request: HttpRequest) -> str:
    """The end of the CallSid: enough to follow a call in the logs, and letters and digits only."""
    call_sid = _NOT_SID.sub("", request.POST.get("CallSid", "")[-64:])
    return f"…{call_sid[-6:]}" if call_sid else "-"


class OverTimeBudget(OperationalError):
    """The webhook's deadline passed: no more queries; its transaction rolls back."""


def _deadline(ends: float) -> Callable:
    """A query wrapper that refuses to start a query after the webhook's deadline.

    With PostgreSQL's statement_timeout and lock_timeout (or SQLite's busy
    timeout) bounding each query, the last one started before the deadline
    still ends inside Twilio's 15 s (docs/TIME_BUDGET.md).
    """

    def guard(execute: Callable, sql: str, params: object, many: bool, context: dict) -> object:
        if time.monotonic() > ends:
            raise OverTimeBudget("webhook deadline passed")
        return execute(sql, params, many, context)

    return guard


def _is_timeout(error: Exception) -> bool:
    """A lock or statement timeout, a busy SQLite file, or our own deadline: the database did not answer in time."""
    if isinstance(error, OverTimeBudget):
        return True
    text = str(error).lower()
    return isinstance(error, OperationalError) and any(
        words in text for words in ("timeout", "database is locked", "canceling statement", "could not connect")
    )


def twilio_webhook(
    view: View | None = None,
    *,
    deadline_seconds: str = "WEBHOOK_DEADLINE_SECONDS",
    read_ahead: Callable[..., ReadsAhead | None] | None = None,
) -> View:
    """CSRF-exempt, POST only, signed by Twilio or 403, never an error status, never late.

    Always on, whatever DEBUG says. A failure inside the view is logged with its
    traceback and answered with a calm apology and <Hangup>, because Twilio
    turns an HTTP error into its own error message in the caller's ear. The
    same goes for a database that does not answer in time: the step's
    transaction rolls back, and the caller hears the apology before Twilio's
    15 s run out, never after a transfer they are told failed.
    One log line per webhook: call, step, outcome, milliseconds. deadline_seconds names the setting
    that bounds this webhook's queries (the <Pay> action request, which also waits for Stripe, has its
    own); the view reads the deadline as request.webhook_deadline (time.monotonic()).

    read_ahead(request, *args, **kwargs): the view's read, sent to the database before the signature is
    checked (ivr.machine.read_call_ahead), so that the database answers while it is; the view finds it as
    request.read_ahead. Only for a request that carries a signature; whatever the view does with it, its
    rows are taken or dropped before the answer goes, a 403 included.
    """
    if view is None:
        return lambda wrapped: twilio_webhook(wrapped, deadline_seconds=deadline_seconds, read_ahead=read_ahead)

    @csrf_exempt
    @require_POST
    @wraps(view)
    def webhook(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        started = time.perf_counter()
        # The deadline counts from the request's arrival: the read sent ahead may have waited on a connect.
        request.webhook_deadline = time.monotonic() + getattr(settings, deadline_seconds)
        request.read_ahead = None
        try:
            if read_ahead is not None and request.headers.get("X-Twilio-Signature"):
                request.read_ahead = read_ahead(request, *args, **kwargs)
            return answered(request, started, *args, **kwargs)
        finally:
            if request.read_ahead is not None:
                request.read_ahead.discard()

    def answered(request: HttpRequest, started: float, *args: object, **kwargs: object) -> HttpResponse:
        if refusal := signature_refusal(request):
            logger.warning("webhook refused: %s path=%s", refusal, request.path)
            return HttpResponseForbidden("invalid signature\n", content_type="text/plain")
        try:
            with after_answer.collected() as later, connection.execute_wrapper(_deadline(request.webhook_deadline)):
                response = view(request, *args, **kwargs)
        except NotThisLine:
            logger.warning("webhook refused: another line's call path=%s call=%s", request.path, call_label(request))
            return HttpResponseForbidden("not this line's call\n", content_type="text/plain")
        except Exception as error:
            if _is_timeout(error):
                logger.warning(
                    "webhook over its time budget: call=%s path=%s error=%s",
                    call_label(request),
                    request.path,
                    type(error).__name__,
                )
                outcome = "database too slow"
            else:
                logger.exception("webhook failed: call=%s path=%s", call_label(request), request.path)
                outcome = "failed"
            response = twiml.twiml_response(twiml.unavailable())
            response.ivr_step, response.ivr_outcome = kwargs.get("step_name", "-"), outcome
        seconds = time.perf_counter() - started
        step, outcome = (
            getattr(response, "ivr_step", request.path),
            getattr(response, "ivr_outcome", response.status_code),
        )
        metrics.webhook_answered(str(step), str(outcome), seconds)
        logger.info("webhook call=%s step=%s outcome=%s ms=%.0f", call_label(request), step, outcome, seconds * 1000)
        # What the view left for after its answer (a write-back, a count) runs once the answer is sent, whatever
        # it was: it is what would have run before the answer, had the caller waited for it.
        after_answer.run_after_sending(response, later, call=call_label(request))
        return response

    return webhook
