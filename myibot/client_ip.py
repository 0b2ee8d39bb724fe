"""The client's address for django-axes: Fly's Fly-Client-IP behind Fly's proxy, else REMOTE_ADDR."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """Fly-Client-IP when TRUST_FLY_CLIENT_IP is on and it holds an address, else REMOTE_ADDR.

    On Fly every request comes through its proxy, which sets Fly-Client-IP
    itself, so REMOTE_ADDR is the proxy's address and would lock every admin
    out together. Anywhere else the header is whatever the client sent: a new
    address with every guess would never be locked, so it is not read at all.
    A value that is not an address is ignored rather than trusted.
    """
    if settings.TRUST_FLY_CLIENT_IP:
        forwarded = request.headers.get("Fly-Client-IP", "").strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            pass
    return request.META.get("REMOTE_ADDR")
