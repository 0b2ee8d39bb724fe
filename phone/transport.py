"""How a simulated call's requests reach the server: in process, or over HTTP to a running one.

A Transport sends one POST that phone.call has already signed, and gives back
the server's Answer (status, body, how long it took in real milliseconds).
When no answer comes it raises one of NO_ANSWER_ERRORS, which the call treats
as Twilio treats a connection failure or a timeout. Tests and the benchmark
write their own Transports to fake, check or time the answers.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

# Twilio gives up on a webhook that has not answered in 15 seconds.
TWILIO_TIMEOUT_SECONDS = 15.0
# Errors a transport raises when the server does not answer (refused, reset, timed out, garbled).
NO_ANSWER_ERRORS = (OSError, http.client.HTTPException)


@dataclass
class Answer:
    status: int
    body: str
    milliseconds: float


class Transport:
    """Sends one signed POST; signed_url is the URL Twilio would have called.

    Raises OSError (or http.client.HTTPException) when no answer comes: the
    simulator treats that as Twilio treats a connection failure or a timeout.
    """

    def post(self, signed_url: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        raise NotImplementedError

    def post_json(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """A JSON body, as Stripe sends its events."""
        raise NotImplementedError


class InProcess(Transport):
    """Through Django's test client: no server needed."""

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client()

    def post(self, signed_url: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        parts = urlsplit(signed_url)
        extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
        started = time.perf_counter()
        response = self.client.post(
            path_and_query(signed_url), params, secure=parts.scheme == "https", HTTP_HOST=parts.netloc, **extra
        )
        return Answer(response.status_code, response.content.decode(), (time.perf_counter() - started) * 1000)

    def post_json(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        parts = urlsplit(url)
        extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
        started = time.perf_counter()
        response = self.client.post(
            path_and_query(url),
            body,
            content_type="application/json",
            secure=parts.scheme == "https",
            HTTP_HOST=parts.netloc,
            **extra,
        )
        return Answer(response.status_code, response.content.decode(), (time.perf_counter() - started) * 1000)


class OverHttp(Transport):
    """To a running server, as Fly's proxy would forward Twilio's request to it."""

    def __init__(self, server: str, timeout: float = TWILIO_TIMEOUT_SECONDS) -> None:
        self.server = server.rstrip("/")
        self.timeout = timeout

    def post(self, signed_url: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        return self._send(
            signed_url, urlencode(params).encode(), {"Content-Type": "application/x-www-form-urlencoded", **headers}
        )

    def post_json(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        return self._send(url, body, {"Content-Type": "application/json", **headers})

    def _send(self, public_url: str, body: bytes, headers: dict[str, str]) -> Answer:
        parts = urlsplit(public_url)
        request = urllib.request.Request(
            self.server + path_and_query(public_url),
            data=body,
            method="POST",
            # The public host and scheme, as the proxy passes them on.
            headers={"Host": parts.netloc, "X-Forwarded-Proto": parts.scheme, **headers},
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read().decode(errors="replace")
        return Answer(status, body, (time.perf_counter() - started) * 1000)


def path_and_query(url: str) -> str:
    """The path and query of a URL, as a server sees them: "https://host/step?n=1" -> "/step?n=1"."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
