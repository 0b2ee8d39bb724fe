"""WSGI entry point for gunicorn: `gunicorn myibot.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

from myibot.environment import exit_on_settings_problems

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myibot.settings")

# Missing or invalid settings: every one named, one line each, and gunicorn stops without a traceback.
with exit_on_settings_problems():
    application = get_wsgi_application()
