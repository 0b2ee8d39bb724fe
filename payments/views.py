"""POST /stripe/events: Stripe's events, believed only with a valid Stripe-Signature, stored before applied."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments import events, stripe_api

logger = logging.getLogger(__name__)

# Stripe's payloads are small; anything far larger is not Stripe's.
LARGEST_EVENT = 512 * 1024


@csrf_exempt
@require_POST
def stripe_events(request: HttpRequest) -> HttpResponse:
    """400 for a bad or stale signature (nothing stored); 200 once stored, applied or set aside; 500 when applying
    failed for a passing reason, so that Stripe sends the event again."""
    if len(request.body) > LARGEST_EVENT:
        return HttpResponse("too large\n", status=400, content_type="text/plain")
    try:
        event = stripe_api.event_from(request.body, request.headers.get("Stripe-Signature", ""))
    except stripe_api.BadSignature as refused:
        logger.warning("stripe event refused: %s", refused)
        return HttpResponse("invalid signature\n", status=400, content_type="text/plain")
    try:
        stored = events.event_receive(event)
    except (DatabaseError, events.NotAppliedYet):
        return HttpResponse("not applied yet: send it again\n", status=500, content_type="text/plain")
    # Stripe reads only the status; the words are for whoever replays an event by hand.
    return HttpResponse(f"{stored.outcome}: {stored.detail}\n", content_type="text/plain")
