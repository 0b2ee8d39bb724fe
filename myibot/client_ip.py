"""The client's address for django-axes, as Fly's proxy reports it."""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """Fly-Client-IP when it holds an address, else REMOTE_ADDR.

    On Fly every request comes through its proxy, which sets Fly-Client-IP
    itself, so REMOTE_ADDR is the proxy's address and would lock every admin
    out together. A value that is not an address is ignored rather than trusted.
    """
    forwarded = request.headers.get("Fly-Client-IP", "").strip()
    try:
        return str(ipaddress.ip_address(forwarded))
    except ValueError:
        return request.META.get("REMOTE_ADDR")
