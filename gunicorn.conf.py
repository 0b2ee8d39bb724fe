"""gunicorn settings for MyiBot: `gunicorn myibot.wsgi` reads this file.

Every figure here is from docs/PERFORMANCE.md: measured, not guessed.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '3001')}"
# Two processes fit a 256 MB machine with room to spare (about 60 MB each);
# threads let one process answer while another request waits on the database
# or on a PIN hash (argon2 releases the GIL).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# Twilio gives up on a webhook after 15 s and then calls the fallback URL:
# a worker stuck longer than that helps nobody, so it is restarted before.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "12"))
graceful_timeout = 10
# Twilio and Fly's proxy keep connections open between webhooks.
keepalive = 30
# Load the app once in the master, so that workers share its memory pages.
preload_app = True
# Recycle workers now and then so that slow leaks never grow.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
accesslog = "-"
errorlog = "-"
# The access log without the query string's prompt numbers is enough; never the body.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
forwarded_allow_ips = "*"
# gunicorn's runtime control socket is unused here, and the non-root user in
# the image has no home directory to put it in.
control_socket_disable = True
