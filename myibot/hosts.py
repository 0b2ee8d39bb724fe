"""A request for a host this server does not answer for: 403 and why, not Django's 400 with a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden

logger = logging.getLogger(__name__)

# Enough to recognise them; both are whatever the client sent.
SHOWN_CHARACTERS = 100


def _shown(text: str) -> str:
    """Printable characters only, so that a forged header cannot write a log line of its own."""
    return "".join(character for character in text[:SHOWN_CHARACTERS] if character.isprintable())


class AllowedHostMiddleware:
    """Refuses a Host outside ALLOWED_HOSTS (BASE_URL's host unless set) with 403, as a bad signature is.

    The usual cause is a URL that is not the server's BASE_URL: a tunnel's new host
    name, or `manage.py call --base-url` naming another host. Django would answer
    400 and log a DisallowedHost traceback; this says, in one log line, what to
    check. It runs before anything else asks for the host (the SSL redirect, CSRF),
    and after the health check, which Fly sends with the machine's own address.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.get_host()
        except DisallowedHost:
            logger.warning(
                "request refused: host %s is not this server's (BASE_URL's host, or ALLOWED_HOSTS) path=%s",
                _shown(request.META.get("HTTP_HOST", "")),
                _shown(request.path),
            )
            return HttpResponseForbidden(
                "host not allowed: this server answers for the host of its BASE_URL (or ALLOWED_HOSTS) only\n",
                content_type="text/plain",
            )
        return self.get_response(request)
