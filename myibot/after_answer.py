"""Work a webhook does after its answer has gone to Twilio, so that the caller does not wait for it.

A step that moves no money writes its call back with one UPDATE, and some steps count the hour's calls
or sign-ins with another. Neither changes what the caller hears, so neither needs to hold up the TwiML:
the webhook decorator (ivr/decorators.py) collects them while the view runs and runs them from the
response's close(), which the WSGI server calls once the body is sent (gunicorn, and Django's runserver
and test client, all do). The caller's line starts speaking a round trip sooner; the worker thread is
busy just as long.

What this costs is said where it is used: a write-back that fails or finds the call moved leaves the
caller's next answer one prompt ahead of the database, which ivr.machine waits for briefly, then treats
as a stale URL ("Let's start again."). Outside a webhook (a management command, a test calling a service)
the work runs at once, where it is asked for.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from functools import partial

from django.http import HttpResponseBase

logger = logging.getLogger(__name__)

# This thread's webhook's work for after its answer; None outside a webhook.
_waiting: ContextVar[list[tuple[str, Callable[[], object]]] | None] = ContextVar("after_answer", default=None)


def after_answer(work: Callable[[], object], *, what: str) -> None:
    """Run work once this webhook's answer is sent, or now outside a webhook. what names it in a log line."""
    waiting = _waiting.get()
    if waiting is None:
        work()
    else:
        waiting.append((what, work))


@contextlib.contextmanager
def collected() -> Iterator[list[tuple[str, Callable[[], object]]]]:
    """Collect the work asked for inside: the webhook decorator hands it to run_after_sending."""
    waiting: list[tuple[str, Callable[[], object]]] = []
    token = _waiting.set(waiting)
    try:
        yield waiting
    finally:
        _waiting.reset(token)


def run_after_sending(
    response: HttpResponseBase, waiting: list[tuple[str, Callable[[], object]]], *, call: str
) -> None:
    """Have response.close() run the work, in order, once the WSGI server has sent the body.

    A failure is logged and the rest still runs: each piece stands alone (a write-back, a count). Django's
    close() would swallow it silently, and then runs request_finished, which tidies the connection after.
    """
    if waiting:
        response._resource_closers.append(partial(_run, list(waiting), call))


def _run(waiting: list[tuple[str, Callable[[], object]]], call: str) -> None:
    for what, work in waiting:
        try:
            work()
        except Exception as error:
            logger.warning("after the answer, %s failed: call=%s error=%s", what, call, type(error).__name__)
