"""gunicorn settings for MyiBot: `gunicorn myibot.wsgi` reads this file.

Every figure here is from docs/PERFORMANCE.md: measured, not guessed.
"""

import ctypes
import ctypes.util
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '3001')}"
# Two processes fit a 256 MB machine (238 MB peak RSS summed under load);
# threads let one process answer while another request waits on the database
# or on a PIN hash (argon2 releases the GIL).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# What bounds one request is not this: a gthread worker keeps telling the
# arbiter it is alive while one of its threads is stuck, so gunicorn's timeout
# only catches a whole worker frozen (gunicorn issue 1440). One webhook is
# bounded by the app (docs/TIME_BUDGET.md): no query starts after
# WEBHOOK_DEADLINE_SECONDS (10), and PostgreSQL's lock_timeout (3 s) and
# statement_timeout (4 s), or SQLite's busy timeout (3 s), bound each query,
# so a blocked step rolls back and answers the apology before Twilio's 15 s.
# This stays below 15 s too, for a frozen worker.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "12"))
graceful_timeout = 10
# Twilio and Fly's proxy keep connections open between webhooks.
keepalive = 30
# Load the app once in the master, so that workers share its memory pages.
preload_app = True
# Recycle workers now and then so that slow leaks never grow.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
# The app logs one line per webhook (call, step, outcome, milliseconds), so
# gunicorn's access log would only repeat it; GUNICORN_ACCESS_LOG=- turns it on.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# Never the query string or the body.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
# gunicorn's runtime control socket is unused here, and the non-root user in
# the image has no home directory to put it in.
control_socket_disable = True


def _bound_malloc() -> None:
    """Keep Argon2's 19 MiB blocks from piling up in every thread's malloc arena.

    glibc gives each thread an arena (up to 8 per core) and each may keep a
    freed 19 MiB block for good. One arena, with one PIN check at a time per
    process (accounts/pins.py), keeps one block per worker and reuses it: a
    fixed mmap threshold would return it to the system after every check but
    costs about 10 ms of page faults each time (docs/PERFORMANCE.md).
    Set in the master, before the workers fork. glibc only.
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    try:
        m_arena_max = -8
        ctypes.CDLL(libc_name).mallopt(m_arena_max, 1)
    except (OSError, AttributeError):
        pass


_bound_malloc()
