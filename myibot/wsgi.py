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
    """What every worker would otherwise load on its first calls, each its own copy: loaded once here, in
    gunicorn's master, so that the workers share it (docs/PERFORMANCE.md, "Memory"). The catalogues of
    every language callers hear (Django's own included), phonenumbers' metadata for the numbers
    callers call from, and the parts of Stripe's library a charge uses."""
    import phonenumbers
    from django.apps import apps
    from django.conf import settings
    from django.utils import translation

    for code in settings.IVR_LANGUAGES:
        with translation.override(code):
            translation.gettext("Main menu.")
    phonenumbers.is_valid_number(phonenumbers.parse("+12025550142", settings.PHONE_REGION))
    # And what each app says its workers will load (payments: the parts of Stripe's library a charge uses).
    for config in apps.get_app_configs():
        loader = getattr(config, "load_before_the_fork", None)
        if loader is not None:
            loader()


_load_before_the_fork()

# The role's database time limits, as the settings say (myibot/postgresql/timeouts.py). In the master,
# before the fork; the connection is closed again, so that no worker inherits its socket.
timeouts.ensure()
