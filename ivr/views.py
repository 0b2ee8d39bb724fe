"""Twilio's webhooks. Thin: read the parameters, ask the call's state machine, answer TwiML."""

from __future__ import annotations

import contextlib
import logging
import re
from urllib.parse import urlsplit

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from twilio.twiml.voice_response import VoiceResponse

from ivr import caller_id, machine, metrics, services, twiml
from ivr.decorators import call_label, signed_line, twilio_webhook
from ivr.models import CallAhead
from ivr.steps.deposit_line import NOT_AVAILABLE, UNCERTAIN
from payments import charges, stripe_api
from payments.errors import UnknownDeposit
from payments.models import CardDeposit

logger = logging.getLogger(__name__)

WELCOME = _("Welcome to MyiBot.")
# The deposit number's fallback URL (and the TwiML Bin of a PCI subaccount's number): static, and true
# whatever happened, since a caller who was paying may have been charged.
DEPOSIT_FALLBACK = _(
    "Sorry, something went wrong. If you were paying, please do not pay again: if your card was charged, the "
    "money reaches the account by itself."
)
DEPOSIT_WELCOME = _("Welcome to the MyiBot deposit line. There is no fee to put money on an account.")
MISSING_CALL = _("We are sorry. Something went wrong with this call. Please call again. Goodbye.")
# Twilio's final call statuses: the call is over and its state can go.
CALL_OVER = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def _answer(response: VoiceResponse, step: str, outcome: str) -> HttpResponse:
    http = twiml.twiml_response(response)
    http.ivr_step, http.ivr_outcome = step, outcome
    return http


def _names_a_call(request: HttpRequest) -> bool:
    return bool(request.POST.get("CallSid", "").strip()) and len(request.POST["CallSid"]) <= 64


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """A goodbye for a request that names no call. Nothing is stored."""
    if not _names_a_call(request):
        return _answer(twiml.goodbye(MISSING_CALL), "entry", "no CallSid")
    return None


def _caller(request: HttpRequest) -> dict[str, object]:
    """The caller's number ("" when withheld: served, never stored), whether it is trusted, and which line's
    token signed the request (ivr.decorators: a call of the other line is not opened)."""
    return {
        "caller": caller_id.caller_number(request.POST.get("From")),
        "trusted": bool(caller_id.trusted_number(request.POST.get("From"), request.POST.get("StirVerstat"))),
        "line": signed_line(request),
    }


@twilio_webhook
def voice(request: HttpRequest) -> HttpResponse:
    """A call comes in: the PIN prompt for a trusted home number, the member-ID prompt for anyone else."""
    if refusal := _refusal(request):
        return refusal
    reply = machine.start_call(call_sid=request.POST["CallSid"], greeting=WELCOME, **_caller(request))
    return _answer(reply.twiml, "entry", reply.outcome)


def _keys(request: HttpRequest) -> str | None:
    # Nothing here reads FinishedOnKey: Twilio's docs leave open whether it comes (ivr/machine.py).
    return None if request.GET.get("no_input") else request.POST.get("Digits")


def _read_call_ahead(request: HttpRequest, step_name: str) -> CallAhead | None:
    """The call's read for these keys, sent while the request's signature is checked (machine.read_call_ahead)."""
    if not _names_a_call(request):
        return None
    return machine.read_call_ahead(call_sid=request.POST["CallSid"], step_name=step_name, keys=_keys(request))


@twilio_webhook(read_ahead=_read_call_ahead)
def step(request: HttpRequest, step_name: str) -> HttpResponse:
    """The caller's keys for a prompt, or the <Redirect> that follows it when nothing came."""
    if refusal := _refusal(request):
        return refusal
    reply = machine.answer_prompt(
        call_sid=request.POST["CallSid"],
        step_name=step_name,
        prompt_number=_prompt_number(request),
        keys=_keys(request),
        called=caller_id.caller_number(request.POST.get("To")),
        sent_ahead=request.read_ahead,
        **_caller(request),
    )
    return _answer(reply.twiml, step_name, reply.outcome)


@twilio_webhook
def deposit(request: HttpRequest) -> HttpResponse:
    """A call comes in to the deposit line: a family putting money on a member's account by card."""
    if refusal := _refusal(request):
        return refusal
    if not stripe_api.configured():
        # Before anyone types a card: with nothing to charge it, no family is asked for one.
        return _answer(twiml.goodbye_in_every_language(DEPOSIT_WELCOME, NOT_AVAILABLE), "deposit", "not available")
    reply = machine.start_call(
        call_sid=request.POST["CallSid"], greeting=DEPOSIT_WELCOME, deposit_line=True, **_caller(request)
    )
    return _answer(reply.twiml, "deposit", reply.outcome)


# What a step may read of <Pay>'s action request. Never PaymentToken (charged once, by the view, and never
# kept), ExpirationDate or a postal code: they are not asked for, so they cannot be kept by mistake.
PAY_RESULT_FIELDS = (
    "Result",
    "PaymentConfirmationCode",
    "PaymentCardType",
    "PaymentCardNumber",
    "PaymentError",
    "PayErrorCode",
    "ConnectorError",
)


# What Twilio may post after <Pay>, by name. The log names which of them came (the first real deposit
# confirms what Twilio's docs leave open); it never holds their values, but for the few below that are safe.
PAY_REQUEST_FIELDS = (
    "PaymentConfirmationCode",
    "PaymentCardType",
    "PaymentCardNumber",
    "ExpirationDate",
    "SecurityCode",
    "PaymentCardPostalCode",
    "PaymentToken",
    "ProfileId",
    "PaymentMethod",
    "PaymentError",
    "PayErrorCode",
    "ConnectorError",
)
_NOT_RESULT = re.compile(r"[^a-z-]")
_NOT_MASK = re.compile(r"[^xX*#-]")


@twilio_webhook(deadline_seconds="PAY_RESULT_DEADLINE_SECONDS")
def deposit_paid(request: HttpRequest) -> HttpResponse:
    """<Pay>'s action request: the card's token, charged here, once; then the words for what is known.

    The charge comes first and on its own (payments.charges): a card is charged and credited even if the
    call's state is gone or its prompt cannot be answered in time. Twilio's retry, and the step, find the
    deposit decided. A <Redirect> after <Pay> (no_result: <Pay> ended without calling this) charges nothing.
    """
    if refusal := _refusal(request):
        return refusal
    _log_pay_request(request)
    posted = {} if request.GET.get("no_result") else request.POST
    result = {field: posted.get(field, "")[:255] for field in PAY_RESULT_FIELDS if field in posted}
    deposit = None
    deposit_id = _deposit_id(request)
    if deposit_id is not None:
        paid = charges.PayResult(
            result=result.get("Result", ""),
            token=posted.get("PaymentToken", "")[:255],
            confirmation_code=result.get("PaymentConfirmationCode", ""),
            card_type=result.get("PaymentCardType", ""),
            card_number=result.get("PaymentCardNumber", ""),
        )
        with contextlib.suppress(UnknownDeposit):
            deposit = charges.card_deposit_paid(
                deposit_id=deposit_id, call_sid=request.POST["CallSid"], paid=paid, deadline=request.webhook_deadline
            )
    try:
        reply = machine.payment_made(
            call_sid=request.POST["CallSid"], prompt_number=_prompt_number(request), result=result, **_caller(request)
        )
    except Exception as failed:
        nothing_charged = deposit is None or deposit.status == CardDeposit.Status.NOT_CHARGED
        if nothing_charged or (deposit.status == CardDeposit.Status.PENDING and not deposit.token_received):
            raise  # nothing was charged, nor is being (a token taken may be charging in another request)
        # The card may be charged (or is): never "call again", which invites a second payment.
        if isinstance(failed, DatabaseError):
            logger.warning(
                "card deposit's words not found in time: call=%s deposit=%s", call_label(request), deposit.pk
            )
        else:
            logger.exception("card deposit's words failed: call=%s deposit=%s", call_label(request), deposit.pk)
        return _answer(twiml.goodbye_in_every_language(UNCERTAIN), "pay", "database too slow")
    return _answer(reply.twiml, "pay", reply.outcome)


def _log_pay_request(request: HttpRequest) -> None:
    """What <Pay> posted, in shape only: the result, the reference's kind (ch_ or pi_), the card type, the
    masked number with its digits as # ("xxxxxxxxxxxx####"), Twilio's error code, and which fields came.

    Never a value that could be card data: no digit of the number, no token, expiration date or postal code.
    """
    posted = request.POST
    reference = posted.get("PaymentConfirmationCode", "")
    kind = reference[:3] if reference[:3] in ("ch_", "pi_") else ("other" if reference else "none")
    token = posted.get("PaymentToken", "")
    token_kind = token[:3] if token[:3] in ("pm_", "tok") else ("other" if token else "none")
    masked = _NOT_MASK.sub("?", re.sub(r"[0-9]", "#", posted.get("PaymentCardNumber", "")[:32]))
    logger.info(
        "pay request: call=%s result=%s token=%s reference=%s card_type=%s masked=%s pay_error=%s fields=%s",
        call_label(request),
        _NOT_RESULT.sub("", posted.get("Result", "")[:40]) or "-",
        token_kind,
        kind,
        _NOT_RESULT.sub("", posted.get("PaymentCardType", "")[:20].lower()) or "-",
        masked or "-",
        _UNSAFE_ERROR_CODE.sub("", posted.get("PayErrorCode", "")[:10]) or "-",
        ",".join(field for field in PAY_REQUEST_FIELDS if field in posted) or "-",
    )


# What a <Pay> progress request may tell, by name; which of them came is logged (the first real deposit shows
# what Twilio sends: its docs name the callback, not its fields). Never a value but the field, attempt and error.
PAY_PROGRESS_FIELDS = ("For", "Capture", "Attempt", "ErrorType", "PartialResult", "Required", *PAY_REQUEST_FIELDS)


@twilio_webhook
def deposit_pay_progress(request: HttpRequest) -> HttpResponse:
    """<Pay>'s statusCallback: where a family is in typing its card, counted and logged in shape only.

    Nothing here charges or keeps anything: the action request (deposit_paid) does, once. Whatever card data
    or token Twilio might send here too, only the names of the fields that came are logged.
    """
    posted = request.POST
    field = posted.get("For") or posted.get("Capture") or ""
    error = posted.get("ErrorType", "")
    metrics.pay_progress(field, error)
    logger.info(
        "pay progress: call=%s deposit=%s for=%s attempt=%s error=%s fields=%s",
        call_label(request),
        _deposit_id(request) or "-",
        field if field in metrics.PAY_FIELDS else ("other" if field else "-"),
        _NOT_DIGIT.sub("", posted.get("Attempt", "")[:2]) or "-",
        error if error in metrics.PAY_ERRORS else ("other" if error else "-"),
        ",".join(name for name in PAY_PROGRESS_FIELDS if name in posted) or "-",
    )
    response = HttpResponse("")
    response.ivr_step, response.ivr_outcome = "pay progress", "progress"
    return response


_NOT_DIGIT = re.compile(r"[^0-9]")


@twilio_webhook
def staff_call(request: HttpRequest) -> HttpResponse:
    """The <Dial> to staff ended (DialCallStatus): back to the prompt the caller was at."""
    if refusal := _refusal(request):
        return refusal
    status = request.POST.get("DialCallStatus", "")
    reply = machine.staff_call_ended(
        call_sid=request.POST["CallSid"], prompt_number=_prompt_number(request), status=status, **_caller(request)
    )
    return _answer(reply.twiml, "staff call", reply.outcome)


def _deposit_id(request: HttpRequest) -> int | None:
    named = request.GET.get("d", "")
    return int(named) if named.isascii() and named.isdigit() and len(named) < 19 else None


def _prompt_number(request: HttpRequest) -> int | None:
    try:
        return int(request.GET.get("n", ""))
    except ValueError:
        return None


@twilio_webhook
def status(request: HttpRequest) -> HttpResponse:
    """Twilio's call status callback: forget a call once it is over.

    Only the call's own caller can end it here: a signed callback naming another
    caller's From deletes nothing. Answers 200 for calls we do not know too:
    an error status would tell Twilio nothing it could act on.
    """
    call_status = request.POST.get("CallStatus", "")
    outcome = "noted"
    if call_status in CALL_OVER:
        outcome = services.call_forget(
            call_sid=request.POST.get("CallSid", ""), from_=request.POST.get("From"), line=signed_line(request)
        )
    response = HttpResponse("")
    response.ivr_step, response.ivr_outcome = f"status {call_status[:20]}", outcome
    return response


# What a logged value from Twilio's fallback request may keep: a forged one cannot
# start a new log line or pass for another field.
_UNSAFE_ERROR_CODE = re.compile(r"[^0-9A-Za-z]")
_UNSAFE_URL_PATH = re.compile(r"[^0-9A-Za-z/._~-]")


def _error_url_path(error_url: str) -> str:
    """The path of the URL that failed, never its query (which may carry what a caller typed)."""
    try:
        path = urlsplit(error_url[:2000]).path
    except ValueError:
        return "-"
    return _UNSAFE_URL_PATH.sub("", path)[:120] or "-"


@twilio_webhook
def fallback(request: HttpRequest) -> HttpResponse:
    """Twilio's fallback URL, used when our voice URL fails: static words, no database.

    Logs the error Twilio reports (ErrorCode, and the path of ErrorUrl), so
    that a failure seen only by Twilio shows in our logs too.
    """
    error_code = _UNSAFE_ERROR_CODE.sub("", request.POST.get("ErrorCode", "")[:100])[:10] or "-"
    logger.warning(
        "twilio fallback: call=%s error=%s url=%s",
        call_label(request),
        error_code,
        _error_url_path(request.POST.get("ErrorUrl", "")),
    )
    return _answer(twiml.unavailable(), "fallback", "apology")


@twilio_webhook
def deposit_fallback(request: HttpRequest) -> HttpResponse:
    """The deposit number's fallback URL: static words that are true whether or not a card was charged."""
    logger.warning(
        "twilio deposit fallback: call=%s error=%s url=%s",
        call_label(request),
        _UNSAFE_ERROR_CODE.sub("", request.POST.get("ErrorCode", "")[:100])[:10] or "-",
        _error_url_path(request.POST.get("ErrorUrl", "")),
    )
    return _answer(twiml.goodbye_in_every_language(DEPOSIT_FALLBACK), "deposit fallback", "apology")
