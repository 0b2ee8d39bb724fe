"""The one decorator every Twilio webhook goes through."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import lru_cache, wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, SIGNATURE_SETTINGS_HEADER, RequestValidator

from ivr import twiml

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]

# A CallSid is "CA" and hex digits; anything else in one must not reach a log line.
_NOT_SID = re.compile(r"[^0-9A-Za-z]")
# What a Webhook Rule's SharedKey may sign with; anything else is refused, never guessed at.
SHARED_KEY_ALGORITHMS = frozenset({HMAC_SHA1, HMAC_SHA256})


@lru_cache(maxsize=8)
def _validators(*secrets: str) -> tuple[RequestValidator, ...]:
    """One validator per configured secret, built once (keyed by the secrets, so a changed setting is seen)."""
    return tuple(RequestValidator(secret) for secret in secrets if secret)


def _shared_key_algorithm(signature_settings: str) -> str | None:
    """The algorithm X-Twilio-Webhooks-Signature-Settings names ("key=...,algorithm=HMAC_SHA256"), if one we know."""
    for part in signature_settings.split(","):
        name, _, value = part.partition("=")
        if name.strip() == "algorithm":
            algorithm = value.strip().upper()
            return algorithm if algorithm in SHARED_KEY_ALGORITHMS else None
    return None


def signature_refusal(request: HttpRequest) -> str | None:
    """Why a request is not Twilio's, or None when its X-Twilio-Signature checks out.

    Behind Fly's proxy the request arrives over plain HTTP on another host, so
    the URL is rebuilt from BASE_URL, as Twilio saw it. Without the signature
    settings header, Twilio signed with the account's Auth Token (HMAC-SHA1):
    TWILIO_AUTH_TOKEN, or TWILIO_SECONDARY_AUTH_TOKEN while a token is rotated.
    With it, a Webhook Rule's SharedKey signed, with the algorithm the header
    names, and only TWILIO_WEBHOOK_SHARED_KEY is tried.
    """
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return "no signature"
    signature_settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
    if signature_settings is None:
        algorithm = HMAC_SHA1
        validators = _validators(settings.TWILIO_AUTH_TOKEN, settings.TWILIO_SECONDARY_AUTH_TOKEN)
    else:
        algorithm = _shared_key_algorithm(signature_settings)
        if algorithm is None:
            return "unknown signature algorithm"
        validators = _validators(settings.TWILIO_WEBHOOK_SHARED_KEY)
        if not validators:
            return "shared-key signature but no TWILIO_WEBHOOK_SHARED_KEY"
    url = settings.BASE_URL + request.get_full_path()
    if any(validator.validate(url, request.POST, signature, algorithm=algorithm) for validator in validators):
        return None
    return "bad signature"


def call_label(request: HttpRequest) -> str:
    """The end of the CallSid: enough to follow a call in the logs, and letters and digits only."""
    call_sid = _NOT_SID.sub("", request.POST.get("CallSid", "")[-64:])
    return f"…{call_sid[-6:]}" if call_sid else "-"


def twilio_webhook(view: View) -> View:
    """CSRF-exempt, POST only, signed by Twilio or 403, and never an error status.

    Always on, whatever DEBUG says. A failure inside the view is logged with its
    traceback and answered with a calm apology and <Hangup>, because Twilio
    turns an HTTP error into its own error message in the caller's ear.
    One log line per webhook: call, step, outcome, milliseconds.
    """

    @csrf_exempt
    @require_POST
    @wraps(view)
    def webhook(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        started = time.perf_counter()
        if refusal := signature_refusal(request):
            logger.warning("webhook refused: %s path=%s", refusal, request.path)
            return HttpResponseForbidden("invalid signature\n", content_type="text/plain")
        try:
            response = view(request, *args, **kwargs)
        except Exception:
            logger.exception("webhook failed: call=%s path=%s", call_label(request), request.path)
            response = twiml.twiml_response(twiml.unavailable())
            response.ivr_step, response.ivr_outcome = kwargs.get("step_name", "-"), "failed"
        logger.info(
            "webhook call=%s step=%s outcome=%s ms=%.0f",
            call_label(request),
            getattr(response, "ivr_step", request.path),
            getattr(response, "ivr_outcome", response.status_code),
            (time.perf_counter() - started) * 1000,
        )
        return response

    return webhook
