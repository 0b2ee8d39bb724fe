"""gunicorn settings for MyiBot: `gunicorn myibot.wsgi` reads this file.

Every figure here is from docs/PERFORMANCE.md: measured, not guessed.
"""

import atexit
import contextlib
import ctypes
import ctypes.util
import gc
import glob
import os
import shutil
import tempfile

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
    """Keep Argon2's 19 MiB blocks from staying in every worker's memory.

    glibc gives each thread an arena (up to 8 per core) and each may keep a
    freed 19 MiB block for good: one arena instead. And a fixed mmap threshold
    of 4 MiB: a block that large (only Argon2's are) is mapped for its check
    and returned to the system after it, instead of staying in the heap: 189
    to 141 MiB proportional set size for master and workers in the evening
    benchmark (docs/PERFORMANCE.md, "Memory"), so that a 256 MB Fly machine
    has room for Stripe's library and the deposit line. Mapping it costs each
    PIN check its page faults, which the image's GLIBC_TUNABLES (huge pages,
    Dockerfile) makes small: paced PIN p99 66 to 102 ms.
    Set in the master, before the workers fork. glibc only.
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    try:
        libc = ctypes.CDLL(libc_name)
        m_arena_max, m_mmap_threshold = -8, -3
        libc.mallopt(m_arena_max, 1)
        libc.mallopt(m_mmap_threshold, 4 * 1024 * 1024)
    except (OSError, AttributeError):
        pass


_bound_malloc()


# One Argon2 check at a time in this instance (accounts.pins): its workers take turns on a file the master
# makes, each check holding 19 MiB for about 25 ms. Set at import, like PROMETHEUS_MULTIPROC_DIR below, so
# that the workers inherit it; a reload (SIGHUP) keeps the file; the master removes it when it exits.
def _argon2_lock_file() -> str:
    path = os.environ.get("ARGON2_LOCK_FILE", "").strip()
    if not path:
        descriptor, path = tempfile.mkstemp(prefix="myibot-argon2-", suffix=".lock")
        os.close(descriptor)
        os.environ["ARGON2_LOCK_FILE"] = path
        atexit.register(_remove_made_file, path, os.getpid())
    return path


def _remove_made_file(path: str, master_pid: int) -> None:
    # Workers inherit this exit handler: only the master that made the file removes it.
    if os.getpid() == master_pid:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


argon2_lock_file = _argon2_lock_file()


# Prometheus metrics (docs/METRICS.md). Each worker counts into its own files
# in one directory, and the master serves their sum to Fly's scraper on
# METRICS_ADDRESS:METRICS_PORT (prometheus_client's multiprocess mode). prometheus_client
# reads PROMETHEUS_MULTIPROC_DIR when it is first imported, and with
# preload_app that happens in this process, as the app loads right after this
# file: so it is set here, at import. A directory given in the environment is
# used (and emptied of earlier runs' files when the master is ready); else a
# new one under the temporary directory, removed when the master exits.
# METRICS_PORT empty: no directory, no files, nothing served.
METRICS_ON = bool(os.environ.get("METRICS_PORT", "9091").strip())
# Left in a directory this file made, so that on_exit knows to remove it, even after a reload.
_MADE_MARK = "made-by-gunicorn-conf"


def _remove_made_directory(path: str, master_pid: int) -> None:
    # Workers inherit this exit handler: only the master that made the directory removes it.
    if os.getpid() == master_pid:
        shutil.rmtree(path, ignore_errors=True)


def _metrics_directory() -> str | None:
    if not METRICS_ON:
        return None
    # Already set on a reload (SIGHUP reads this file again): the workers' files stay where they are.
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if not path:
        path = tempfile.mkdtemp(prefix="myibot-metrics-")
        open(os.path.join(path, _MADE_MARK), "w").close()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        # on_exit removes it; this too when the master stops before on_exit can run (the app failed to load).
        atexit.register(_remove_made_directory, path, os.getpid())
    os.makedirs(path, exist_ok=True)
    return path


metrics_directory = _metrics_directory()


def _made_here(path: str) -> bool:
    """Whether _metrics_directory made the directory (to be removed), not the environment (to be kept)."""
    return os.path.exists(os.path.join(path, _MADE_MARK))


def _remove_metric_files(path: str, *, keep_pid: int | None = None) -> None:
    """Remove prometheus_client's files (NAME_PID.db) from path, but those of keep_pid."""
    for name in glob.glob(os.path.join(path, "*.db")):
        if keep_pid is None or not name.endswith(f"_{keep_pid}.db"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)


def _clean_up(path: str) -> None:
    """Remove the directory if this file made it; else only the files in it."""
    if _made_here(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        _remove_metric_files(path)


def when_ready(server) -> None:
    """Serve /metrics from the master, once, after the public port is bound and before any worker starts."""
    if metrics_directory is None:
        server.log.info("metrics off: METRICS_PORT is empty")
        return
    # The app is loaded (preload_app), its settings checked: METRICS_PORT is a port, and not PORT.
    from django.conf import settings

    from myibot import metrics

    port, address = settings.METRICS_PORT, settings.METRICS_ADDRESS
    if port is None:
        return
    public = {name[1] for name in (listener.getsockname() for listener in server.LISTENERS) if isinstance(name, tuple)}
    if port in public:
        # A --bind that settings could not see: the metrics would be public.
        _clean_up(metrics_directory)
        raise RuntimeError(f"METRICS_PORT {port} is the port gunicorn serves the public on; pick another")
    # Files from an earlier run (in a directory given in the environment) would add to this run's
    # counts; only this master's own, made as the app loaded, are of this run.
    _remove_metric_files(metrics_directory, keep_pid=os.getpid())
    try:
        # METRICS_ADDRESS: Fly's private address on Fly, else 127.0.0.1; never every interface by default.
        metrics.serve(port, metrics_directory, addr=address)
    except OSError as error:
        # Calls matter more than their metrics: serve them anyway, and say so loudly.
        server.log.error("metrics not served: %s port %s: %s", address, port, error)
        return
    server.log.info("metrics on %s:%s, from %s", address, port, metrics_directory)


def child_exit(server, worker) -> None:
    """A worker ended (recycled, killed, crashed): its counts stay in its files and keep adding up."""
    if metrics_directory is None:
        return
    from prometheus_client import multiprocess

    # Drops the worker's live gauges (there are none today); counters and histograms stay.
    multiprocess.mark_process_dead(worker.pid, metrics_directory)


def on_exit(server) -> None:
    """The master is done: no process writes to the files any more, and the next start begins from zero."""
    if metrics_directory is not None:
        _clean_up(metrics_directory)


def pre_fork(server, worker) -> None:
    """Freeze what the master loaded (Django, the app, Stripe's library) before each worker forks.

    A worker's garbage collector writes into every object it scans (its gc bookkeeping), and each page
    it writes to is copied out of the master's into the worker's own memory: what master and workers
    shared stops being shared. Frozen objects are never scanned, so those pages stay shared: 173 to
    142 MiB proportional set size for master and two workers after the paced benchmark
    (docs/PERFORMANCE.md, "Memory"). The master's garbage is not collected first: that left holes
    the workers then wrote into (183 MiB).
    """
    gc.freeze()
