"""GET /healthz: 200 when the database answers, 503 when it does not."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"


def database_is_reachable() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.warning("health check: database unreachable", exc_info=True)
        return False
    return True


class HealthCheckMiddleware:
    """Answers /healthz before the SSL redirect and the host check.

    Fly's checks reach the machine over plain HTTP with its private address as
    the host, which neither SECURE_SSL_REDIRECT nor ALLOWED_HOSTS would let by.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != HEALTH_PATH:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
        if database_is_reachable():
            return HttpResponse("ok\n", content_type="text/plain")
        return HttpResponse("database unreachable\n", status=503, content_type="text/plain")
