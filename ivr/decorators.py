"""The one decorator every Twilio webhook goes through."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from ivr import twiml

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def signature_is_valid(request: HttpRequest) -> bool:
    """Check X-Twilio-Signature against the public URL Twilio called.

    Behind Fly's proxy the request arrives over plain HTTP on another host, so
    the URL is rebuilt from BASE_URL, as Twilio saw it.
    """
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    url = settings.BASE_URL + request.get_full_path()
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, request.POST, signature)


def call_label(request: HttpRequest) -> str:
    """The end of the CallSid: enough to follow a call in the logs."""
    call_sid = request.POST.get("CallSid", "")
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
        if not signature_is_valid(request):
            logger.warning("webhook refused: bad signature path=%s", request.path)
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
