"""WSGI entry point for gunicorn: `gunicorn myibot.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

from myibot.environment import exit_on_settings_problems

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myibot.settings")

# Missing or invalid settings: every one named, one line each, and gunicorn stops without a traceback.
with exit_on_settings_problems():
    application = get_wsgi_application()
    # Every view, and what they import (Stripe's library among them), loaded now: gunicorn loads this in its
    # master before it forks (preload_app), so the workers share those pages instead of each loading its own.
    _ = get_resolver().url_patterns

# The role's database time limits, as the settings say (myibot/postgresql/timeouts.py). In the master,
# before the fork; the connection is closed again, so that no worker inherits its socket.
from myibot.postgresql import timeouts

timeouts.ensure()
