"""The production settings, with test secrets: tests run with DEBUG off, as production does."""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 40)
os.environ.setdefault("TWILIO_AUTH_TOKEN", "test-twilio-auth-token")
os.environ.setdefault("BASE_URL", "https://testserver")
os.environ.setdefault("PIN_PEPPER", "test-pin-pepper")

from myibot.settings import *  # noqa: F403

# No collectstatic before tests: serve the admin's files from the apps, unhashed.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_AUTOREFRESH = True
