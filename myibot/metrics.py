"""Prometheus: recording a value safely, and the endpoint Fly's scraper reads (docs/METRICS.md).

Each app defines its own series where its events happen, in prometheus_client's
registry (accounts/activity.py: calls, sign-ins, locks, transfers; ivr/metrics.py:
webhooks, with the labels it allows); this module knows none of them.

Under gunicorn, gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before the app
is imported: prometheus_client then keeps every worker's values in files of
that directory, and gunicorn's master serves their sum on METRICS_ADDRESS,
port METRICS_PORT (`serve`). Anywhere else (runserver, tests, manage.py) the values live in the
process, in prometheus_client's default registry, and nothing is served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)


def record(what: Callable[[], object]) -> None:
    """Metrics never fail a call: a value that cannot be written (a full disk, say) is logged and dropped."""
    try:
        what()
    except Exception:
        logger.exception("a metric was not recorded")


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """A registry that adds up the values every process wrote to directory (dead workers' included)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def serve(port: int, directory: str, *, addr: str) -> WSGIServer:
    """Serve the sum of every worker's values on addr:port, from a thread of the calling process (gunicorn's master).

    addr is METRICS_ADDRESS: on Fly the machine's private address, where Fly's
    scraper reads it; never every interface unless someone sets 0.0.0.0.
    """
    server, _thread = start_http_server(port, addr=addr, registry=multiprocess_registry(directory))
    return server
