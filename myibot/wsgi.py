"""WSGI entry point for gunicorn: `gunicorn myibot.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

from myibot.environment import exit_on_settings_problems
from myibot.postgresql import timeouts

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myibot.settings")

# Missing or invalid settings: every one named, one line each, and gunicorn stops without a traceback.
with exit_on_settings_problems():
    application = get_wsgi_application()
    # Every view, and what they import (Stripe's library among them), loaded now: gunicorn loads this in its
    # master before it forks (preload_app), so the workers share those pages instead of each loading its own.
    _ = get_resolver().url_patterns


def _load_before_the_fork() -> None:
    """What each app says its workers would otherwise load on first use, each its own copy (payments: the
    parts of Stripe's library a charge uses): loaded once here, in gunicorn's master, so that the workers
    share it (docs/PERFORMANCE.md, "Memory")."""
    from django.apps import apps

    for config in apps.get_app_configs():
        loader = getattr(config, "load_before_the_fork", None)
        if loader is not None:
            loader()


_load_before_the_fork()

# The role's database time limits, as the settings say (myibot/postgresql/timeouts.py). In the master,
# before the fork; the connection is closed again, so that no worker inherits its socket.
timeouts.ensure()
