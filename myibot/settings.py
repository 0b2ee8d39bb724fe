"""MyiBot settings, read from the environment (README, Configuration).

Safe by default: DEBUG is off, and with DEBUG off every secret must be set or
start-up stops. Every missing or invalid variable is named at once, one line
each (myibot/environment.py), not one per attempt. With DEBUG on, insecure
development values stand in for the secrets, with a warning.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import phonenumbers
from django.core.exceptions import ImproperlyConfigured

from myibot import languages
from myibot.environment import Environment

BASE_DIR = Path(__file__).resolve().parent.parent

_env = Environment()

# An operator's management command (deposit, unlock...) prints its own summary
# and nothing else: no development warning, no log lines below WARNING. The
# server (runserver, gunicorn) and the phone simulator keep both.
OPERATOR_COMMANDS = frozenset(
    {
        "deposit",
        "reverse_deposit",
        "create_recipient",
        "unlock",
        "verify_code",
        "reject_registration",
        "add_shared_line",
        "remove_shared_line",
        "purge_call_sessions",
        # And the set-up steps `make run` and `make serve` take before the server, which warns once itself.
        "migrate",
        "catalogue",
        "collectstatic",
    }
)
OPERATOR_COMMAND = Path(sys.argv[0]).name == "manage.py" and sys.argv[1:2] != [] and sys.argv[1] in OPERATOR_COMMANDS


DEBUG = _env.flag("DEBUG", False)

# The port gunicorn serves on (gunicorn.conf.py), and `make run`'s; the development BASE_URL follows it.
PORT = _env.port("PORT", 3001)

_development_stand_ins: list[str] = []


def _secret(name: str, development_value: str) -> str:
    return _env.secret(name, debug=DEBUG, development_value=development_value, stand_ins=_development_stand_ins)


SECRET_KEY = _secret("SECRET_KEY", "dev-insecure-secret-key-do-not-use-in-production")
TWILIO_AUTH_TOKEN = _secret("TWILIO_AUTH_TOKEN", "dev-twilio-auth-token")
# With DEBUG on, the server `make run PORT=...` starts, on this machine only.
BASE_URL = _secret("BASE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
# Mixed into every PIN and confirmation code before hashing; it lives outside
# the database so that a stolen database alone does not give up 4-digit PINs.
PIN_PEPPER = _secret("PIN_PEPPER", "dev-pin-pepper")

# Twilio webhook signatures beyond TWILIO_AUTH_TOKEN (docs/TWILIO.md). Optional, empty when unused.
# A second Auth Token accepted beside TWILIO_AUTH_TOKEN, only while the token is rotated.
TWILIO_SECONDARY_AUTH_TOKEN = os.environ.get("TWILIO_SECONDARY_AUTH_TOKEN", "").strip()
# The secret of a Webhook Rule's SharedKey; a request saying it is signed with one is refused without it.
TWILIO_WEBHOOK_SHARED_KEY = os.environ.get("TWILIO_WEBHOOK_SHARED_KEY", "").strip()

_base = urlsplit(BASE_URL)
if BASE_URL and (_base.scheme not in ("http", "https") or not _base.hostname):
    _env.problem(f"BASE_URL must be an origin like https://myibot.fly.dev, not {BASE_URL!r}")
elif _base.path or _base.query:
    _env.problem(f"BASE_URL must be an origin only, without a path, not {BASE_URL!r}")
elif not DEBUG and _base.scheme != "https" and os.environ.get("BASE_URL", "").strip():
    # Twilio signs the URL it calls; behind Fly's forced https that is https://, so an http BASE_URL
    # would fail every call's signature (403), whatever else is right.
    _env.problem(f"BASE_URL must be https with DEBUG off (Twilio calls and signs https://...), not {BASE_URL!r}")

ALLOWED_HOSTS = [
    host.strip() for host in os.environ.get("ALLOWED_HOSTS", _base.hostname or "").split(",") if host.strip()
]
if DEBUG:
    ALLOWED_HOSTS += ["127.0.0.1", "localhost", "testserver"]
CSRF_TRUSTED_ORIGINS = [BASE_URL]

INSTALLED_APPS = [
    "myibot.admin_site.OperationsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "accounts",
    "payments",
    "ivr",
]
# The phone simulator (`manage.py call`) is test and bench tooling: a checkout has it, the image does not
# (.dockerignore), and the service starts without it.
if importlib.util.find_spec("phone") is not None:
    INSTALLED_APPS.append("phone")

MIDDLEWARE = [
    # First, so that Fly's plain-HTTP health check is answered before the
    # SSL redirect and the ALLOWED_HOSTS check (the check uses the machine's IP).
    "myibot.health.HealthCheckMiddleware",
    # Then a host that is not ours: 403 with the reason, as a bad signature is, not a 400 and a traceback.
    "myibot.hosts.AllowedHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out admin login into a 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "myibot.urls"
WSGI_APPLICATION = "myibot.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "myibot" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = _env.text("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    _database = dj_database_url.parse(
        _database_url,
        # Reusing connections saves a connect per webhook; health checks make
        # a connection dropped by the server a retry, not a failed call (on
        # PostgreSQL without a round trip: myibot/postgresql).
        # At most 5 minutes: a pooler or a managed database ends connections idle longer than that, and
        # a connection is a server process held on Fly Managed Postgres (README, "Many machines").
        conn_max_age=_env.number("CONN_MAX_AGE", 300, minimum=0, maximum=300),
        conn_health_checks=True,
    )
except ValueError:
    # Only the scheme is shown: the rest of the URL may hold the database's password.
    _scheme = _database_url.partition("://")[0] if "://" in _database_url else ""
    _env.problem(
        "DATABASE_URL must be a database URL such as postgres://USER:PASSWORD@HOST:5432/NAME or "
        f"sqlite:///PATH, not one with the scheme {_scheme!r}"
    )
    _database = dj_database_url.parse(f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": _database}
# Twilio waits 15 s for a webhook's whole answer (docs/TIME_BUDGET.md). A step
# stops starting queries after WEBHOOK_DEADLINE_SECONDS (ivr/decorators.py),
# and no one statement, lock wait or connect may take longer than these, so
# that even the last query started before the deadline ends well inside 15 s
# and a blocked step rolls back and answers the calm apology in time.
WEBHOOK_DEADLINE_SECONDS = _env.number("WEBHOOK_DEADLINE_SECONDS", 10, minimum=1)
DB_LOCK_TIMEOUT_MS = _env.number("DB_LOCK_TIMEOUT_MS", 3000)
DB_STATEMENT_TIMEOUT_MS = _env.number("DB_STATEMENT_TIMEOUT_MS", 4000)
DB_CONNECT_TIMEOUT = _env.number("DB_CONNECT_TIMEOUT", 3, minimum=2)
# Named prepared statements: PostgreSQL parses and plans a step's queries once
# per connection instead of on every webhook, about a fifth of a menu step
# (docs/PERFORMANCE.md). Right when connecting straight to PostgreSQL, as `fly
# postgres attach` does. A pooler in transaction mode in between must track
# them (PgBouncer 1.21 or later with max_prepared_statements above 0); behind
# any other, set false, or queries fail with "prepared statement does not exist".
# How DATABASE_URL reaches PostgreSQL: "direct", or through a pooler (PgBouncer, as Fly Managed Postgres
# gives it) in "session" or "transaction" mode. In transaction mode each transaction may run on another
# server connection: nothing may rest on a session (a SET, a named prepared statement the pooler does not
# track, a server-side cursor), so the time limits come from the role's own settings (below).
DATABASE_POOLER = _env.choice("DATABASE_POOLER", "direct", ("direct", "session", "transaction"))
DB_PREPARED_STATEMENTS = _env.flag("DB_PREPARED_STATEMENTS", DATABASE_POOLER != "transaction")
# The release command's migrations go straight to PostgreSQL (DATABASE_DIRECT_URL, which Fly Managed
# Postgres gives beside its pooled URL), with limits of their own: an index on a large table takes longer
# than a webhook's 4 s, and a pooler in transaction mode cannot hold a session's settings.
DB_MIGRATION_LOCK_TIMEOUT_MS = _env.number("DB_MIGRATION_LOCK_TIMEOUT_MS", 60000)
DB_MIGRATION_STATEMENT_TIMEOUT_MS = _env.number("DB_MIGRATION_STATEMENT_TIMEOUT_MS", 0)
_direct_url = _env.text("DATABASE_DIRECT_URL", "")
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    if DATABASE_POOLER == "transaction" and not _direct_url:
        _env.problem(
            "DATABASE_POOLER=transaction needs DATABASE_DIRECT_URL: migrations set the role's time limits "
            "and hold sessions, which a transaction pooler cannot give them"
        )
    DATABASES["direct"] = {
        **(dj_database_url.parse(_direct_url, conn_max_age=0) if _direct_url else copy.deepcopy(DATABASES["default"])),
        # Tests run on the default database; "direct" is the same database by another road.
        "TEST": {"MIRROR": "default"},
    }
for _alias, _database in DATABASES.items():
    if _database["ENGINE"] != "django.db.backends.postgresql":
        continue
    # Django's backend, with a health check that asks the socket, not the server, and the time limits
    # set without libpq's `options`, which PgBouncer refuses (myibot/postgresql).
    _database["ENGINE"] = "myibot.postgresql"
    _pooled = _alias == "default" and DATABASE_POOLER != "direct"
    # Each connection's limits, in ms (0: none). Directly or through a pooler in session mode the backend
    # sets them on the session when it connects; in transaction mode only the role's settings hold, which
    # a migration sets and every start checks (myibot/postgresql/timeouts.py).
    _database["TIME_LIMITS"] = {
        "lock_timeout": DB_MIGRATION_LOCK_TIMEOUT_MS if _alias == "direct" else DB_LOCK_TIMEOUT_MS,
        "statement_timeout": DB_MIGRATION_STATEMENT_TIMEOUT_MS if _alias == "direct" else DB_STATEMENT_TIMEOUT_MS,
        "set_on_connect": not (_pooled and DATABASE_POOLER == "transaction"),
    }
    # Server-side cursors (the CSV exports' .iterator()) live in a session: not behind a transaction pooler.
    _database["DISABLE_SERVER_SIDE_CURSORS"] = _pooled and DATABASE_POOLER == "transaction"
    # Server-side binding sends values apart from the SQL, so that a statement
    # PostgreSQL logs on an error (a lock timeout, say) shows $1, not what a
    # caller typed: at default settings it never logs parameters on errors.
    # Prepared the second time a query runs on a connection, when allowed, and planned once then: the
    # backend has each session plan prepared statements generically (plan_cache_mode, myibot/postgresql).
    # A connection lives 5 minutes and runs each of a step's statements a few dozen times: at psycopg's
    # default (5) and PostgreSQL's (five custom plans first) most of them would be planned anew, which
    # for the statements that read a call with what its answer asks costs more than running them
    # (docs/PERFORMANCE.md). tests/test_query_plans.py checks the generic plans of the hot queries.
    _database.setdefault("OPTIONS", {}).update(
        server_side_binding=True,
        prepare_threshold=1 if DB_PREPARED_STATEMENTS and _alias == "default" else None,
        connect_timeout=DB_CONNECT_TIMEOUT,
        # A server gone without a word (its host lost) never answers, and statement_timeout,
        # which it would enforce, cannot end the wait: a query whose bytes go unacknowledged
        # for 4 s fails (tcp_user_timeout), and an idle connection is probed by keepalives.
        tcp_user_timeout=4000 if _alias == "default" else 0,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several gunicorn workers may share the file. IMMEDIATE transactions take
    # the write lock up front, so that two read-then-write transactions wait
    # for each other (at most the lock timeout) instead of failing at once; WAL lets
    # readers go on while one writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=(DB_LOCK_TIMEOUT_MS or 20_000) / 1000,
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# PINs: HMAC with PIN_PEPPER, then Argon2id at OWASP's minimum (accounts/pins.py).
# Django's own Argon2 hasher stays listed so older hashes verify and are upgraded.
PASSWORD_HASHERS = [
    "accounts.hashers.PinArgon2idHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# The service's own clock: the dates callers hear, "today" for the daily limits, the dashboard's hours
# and days (myibot/local_time.py). The database keeps UTC (USE_TZ); only what people read is local.
TIME_ZONE = _env.zone("TIME_ZONE", "America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Behind Fly's proxy, which terminates TLS and says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = _env.number("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Admin sign-in throttling (django-axes). Only /admin/ authenticates; Twilio's
# webhooks never do, so axes never sees them.
AUTHENTICATION_BACKENDS = [
    # First: it refuses a locked-out username or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
# Five failures from one client address lock that address for every username,
# and five for one username from one address lock that pair. Never a username
# alone: anyone could then lock an operator out from anywhere by failing five times.
AXES_LOCKOUT_PARAMETERS = ["ip_address", ["username", "ip_address"]]
AXES_ONLY_ADMIN_SITE = True
AXES_CLIENT_IP_CALLABLE = "myibot.client_ip.client_ip"
# Fly's proxy sets Fly-Client-IP (REMOTE_ADDR is the proxy's own address there); anywhere
# else a client can send it, and a new address with every try would never be locked. So it
# is believed only behind Fly, whose machines have FLY_APP_NAME.
ON_FLY = bool(os.environ.get("FLY_APP_NAME", "").strip())
TRUST_FLY_CLIENT_IP = _env.flag("TRUST_FLY_CLIENT_IP", ON_FLY)
# Axes stores a failed login's form data with the password always masked, and
# masks the username and address in its log lines (its defaults, kept).
# Not verbose: no "AXES: BEGIN" line on every manage.py command; failures and lockouts are still logged.
AXES_VERBOSE = False

# The IVR: the languages it offers, the voice of each, and how long it waits
# for slow callers. Each language is one record in myibot/languages.py; this is
# their registry, with the voice and locale IVR_VOICE_<CODE> and IVR_LOCALE_<CODE>
# give a record (start-up stops if a voice does not speak its locale). Every
# sentence a caller hears goes through gettext; each language but English has
# its catalogue, locale/<code>/LC_MESSAGES/django.po.
try:
    CALLER_LANGUAGES = languages.configured(os.environ)
except ImproperlyConfigured as _problem:
    _env.problem(str(_problem))
    CALLER_LANGUAGES = {language.code: language for language in languages.RECORDS}
LANGUAGES = [(code, language.name) for code, language in CALLER_LANGUAGES.items()]
LOCALE_PATHS = [BASE_DIR / "locale"]
IVR_LANGUAGES = [code.strip().lower() for code in os.environ.get("IVR_LANGUAGES", "en,es").split(",") if code.strip()]
if (
    not IVR_LANGUAGES
    or len(set(IVR_LANGUAGES)) != len(IVR_LANGUAGES)
    or not set(IVR_LANGUAGES) <= set(CALLER_LANGUAGES)
):
    _env.problem(f"IVR_LANGUAGES must list some of {', '.join(CALLER_LANGUAGES)} once each, in menu order, e.g. en,es")
IVR_GATHER_TIMEOUT = _env.number("IVR_GATHER_TIMEOUT", 8, minimum=6)

# Identity. Numbers operators type without a country code ("202-623-0001")
# are read as numbers of this region (an ISO 3166 code, as phonenumbers takes it).
PHONE_REGION = os.environ.get("PHONE_REGION", "US").strip().upper()
if PHONE_REGION not in phonenumbers.SUPPORTED_REGIONS:
    _env.problem(f"PHONE_REGION must be a region code such as US or MX, not {PHONE_REGION!r}")
# Which caller IDs open PIN-only sign-in and become home numbers (ivr/caller_id.py):
# "attested", only those the carrier vouches for (StirVerstat=TN-Validation-Passed-A);
# "unless-failed", any valid number whose STIR/SHAKEN validation did not fail (version 2).
CALLER_ID_TRUST = _env.choice("CALLER_ID_TRUST", "attested", ("attested", "unless-failed"))
# The service's own staff line: when set, 0 (help) at any prompt offers to
# connect to it ("To talk to staff, press 0 again"), for at most STAFF_CALL_MINUTES.
STAFF_PHONE_NUMBER = ""
if _staff := os.environ.get("STAFF_PHONE_NUMBER", "").strip():
    try:
        _staff_number = phonenumbers.parse(_staff, PHONE_REGION)
    except phonenumbers.NumberParseException:
        _staff_number = None
    if _staff_number is None or not phonenumbers.is_possible_number(_staff_number):
        _env.problem(f"STAFF_PHONE_NUMBER must be a phone number such as +12025550100, not {_staff!r}")
    else:
        STAFF_PHONE_NUMBER = phonenumbers.format_number(_staff_number, phonenumbers.PhoneNumberFormat.E164)
STAFF_CALL_MINUTES = _env.number("STAFF_CALL_MINUTES", 10, minimum=1)
# Registration by phone: at most this many accounts from one personal number in a day (TIME_ZONE),
# and this many across the service in an hour; shared lines and withheld numbers only the second.
REGISTRATIONS_PER_LINE_PER_DAY = _env.number("REGISTRATIONS_PER_LINE_PER_DAY", 3, minimum=1)
REGISTRATIONS_PER_HOUR = _env.number("REGISTRATIONS_PER_HOUR", 60, minimum=1)
# A registration nobody verified is released after this many days, freeing its member ID.
REGISTRATION_VERIFY_DAYS = _env.number("REGISTRATION_VERIFY_DAYS", 14, minimum=1)
# Failed sign-ins across the whole service in one minute above which PIN-only
# entry is suspended for 15 minutes (a spray of one guess on many accounts).
SIGN_IN_SPRAY_PER_MINUTE = _env.number("SIGN_IN_SPRAY_PER_MINUTE", 30, minimum=1)

# Money and codes.
TRANSFER_LIMIT_DOLLARS = _env.number("TRANSFER_LIMIT_DOLLARS", 500, minimum=1)
# The most one account may send in a calendar day in TIME_ZONE, over submitted and settled transfers.
DAILY_TRANSFER_LIMIT_DOLLARS = _env.number("DAILY_TRANSFER_LIMIT_DOLLARS", 1000, minimum=1)
# An operator's deposit above this needs --confirm: a typo must not cost real money.
DEPOSIT_CONFIRM_DOLLARS = _env.number("DEPOSIT_CONFIRM_DOLLARS", 1000, minimum=1)
# No operator's deposit may be more than this, --confirm or not: a balance callers hear stays a sum one
# deposit could make (an extra digit typed is refused, not spoken back as a ten-digit balance).
DEPOSIT_MAX_DOLLARS = _env.number("DEPOSIT_MAX_DOLLARS", 10_000, minimum=1)
CONFIRMATION_CODE_TTL_DAYS = _env.number("CONFIRMATION_CODE_TTL_DAYS", 30, minimum=1)
CALL_SESSION_MAX_IDLE_MINUTES = _env.number("CALL_SESSION_MAX_IDLE_MINUTES", 120, minimum=1)

# The deposit line: families pay by card through Twilio <Pay>, no fee (docs/DEPOSITS.md).
# The most one card deposit may be, and the most card deposits to one member in a day (TIME_ZONE).
DEPOSIT_CARD_MAX_DOLLARS = _env.number("DEPOSIT_CARD_MAX_DOLLARS", 200, minimum=1)
DAILY_DEPOSIT_LIMIT_DOLLARS = _env.number("DAILY_DEPOSIT_LIMIT_DOLLARS", 500, minimum=1)
# Deposits from one caller number that ended without a charge, a day (withheld and unvouched numbers are
# counted per member they call for, so that they close the line to nobody else); failed member-ID lookups
# are counted apart, per number (docs/DEPOSITS.md, "Limits").
DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY = _env.number("DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY", 5, minimum=1)
# Issuer declines of our charges for callers no carrier vouches for, across the service in an hour: above
# it, such callers hear that the line is busy (card testing); a mistyped card, *, or a hang-up never counts.
DEPOSIT_DECLINES_PER_HOUR = _env.number("DEPOSIT_DECLINES_PER_HOUR", 100, minimum=1)
# Per card (Stripe's fingerprint): how many different members in 7 days, and how many dollars a day.
CARD_MEMBERS_PER_WEEK = _env.number("CARD_MEMBERS_PER_WEEK", 2, minimum=1)
CARD_DAILY_LIMIT_DOLLARS = _env.number("CARD_DAILY_LIMIT_DOLLARS", 500, minimum=1)
# Card money cannot be sent out by transfer before local midnight after the charge plus this many hours.
CARD_FUNDS_HOLD_HOURS = _env.number("CARD_FUNDS_HOLD_HOURS", 72)
# The Twilio Pay connector (Stripe) that turns the card into a PaymentMethod, by its name in Twilio's console.
PAY_CONNECTOR = os.environ.get("PAY_CONNECTOR", "").strip() or "Default"
# Charges, refunds and reconciliation (payments/stripe_api.py). Unset: with DEBUG off the deposit line says
# card deposits are not available and the commands refuse; with DEBUG on, the phone simulator's test
# processor answers as Stripe's test cards do.
STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "").strip()
# Verifies POST /stripe/events (Stripe-Signature); required with a secret key.
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "").strip()
if STRIPE_SECRET_KEY and not STRIPE_WEBHOOK_SECRET:
    _env.problem("STRIPE_WEBHOOK_SECRET is required with STRIPE_SECRET_KEY (the /stripe/events endpoint's secret)")
if STRIPE_SECRET_KEY and not STRIPE_SECRET_KEY.startswith(("sk_", "rk_")):
    _env.problem("STRIPE_SECRET_KEY must be a Stripe secret key (sk_live_..., sk_test_... or a restricted rk_...)")
# Stripe's library prints every request's URL to stderr when STRIPE_LOG is set, a card's pm_ id among them.
if os.environ.get("STRIPE_LOG", "").strip():
    _env.problem("STRIPE_LOG must be unset: Stripe's library would print card tokens (pm_...) in request URLs")
# Mark charges as mail or telephone orders: only once Stripe has enabled MOTO for the account.
STRIPE_MOTO = _env.flag("STRIPE_MOTO", False)
# Where the stripe library sends requests (Stripe's stripe-mock, a test double); empty: Stripe's API.
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "").strip().rstrip("/")
# <Pay>'s action request charges the card: no query starts after this many seconds, and each lasts at most
# DB_STATEMENT_TIMEOUT_MS (4 s), so the answer is inside Twilio's 15 s; Stripe's budgets end before it
# (payments.charges), so that what Stripe said can still be recorded and said.
PAY_RESULT_DEADLINE_SECONDS = _env.number("PAY_RESULT_DEADLINE_SECONDS", 10, minimum=1)
# The deposit line's number may sit on a PCI subaccount, which signs with its own token.
TWILIO_DEPOSIT_AUTH_TOKEN = os.environ.get("TWILIO_DEPOSIT_AUTH_TOKEN", "").strip() or TWILIO_AUTH_TOKEN
# The subaccount's next token, accepted beside its own only while it is rotated (docs/TWILIO.md): without it,
# every deposit call between promoting the new token in Twilio and the app restarting with it gets 403.
TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN = os.environ.get("TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN", "").strip()
# Each token opens one line's URLs (ivr.decorators): none may stand in the other line's variables.
_members_tokens = {TWILIO_AUTH_TOKEN, TWILIO_SECONDARY_AUTH_TOKEN} - {""}
_deposit_tokens = {TWILIO_DEPOSIT_AUTH_TOKEN, TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN} - {""}
if TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN and TWILIO_DEPOSIT_AUTH_TOKEN == TWILIO_AUTH_TOKEN:
    _env.problem(
        "TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN is for a deposit line on a subaccount with its own "
        "TWILIO_DEPOSIT_AUTH_TOKEN; rotating the main account's token takes TWILIO_SECONDARY_AUTH_TOKEN"
    )
elif TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN in _members_tokens:
    # The members' token would then open the deposit line's URLs, which its own token keeps apart.
    _env.problem("TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN must be the subaccount's token, not a members' line token")
if TWILIO_DEPOSIT_AUTH_TOKEN != TWILIO_AUTH_TOKEN and TWILIO_SECONDARY_AUTH_TOKEN in _deposit_tokens:
    # The subaccount's token would then open sign-in, PINs and transfers: its own rotation has its own name.
    _env.problem(
        "TWILIO_SECONDARY_AUTH_TOKEN must not be the deposit line's subaccount token: rotating that one takes "
        "TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN"
    )

# Prometheus metrics for Fly's scraper (docs/METRICS.md): gunicorn's master
# serves them on this port; empty turns them off. Never the public port, which
# Fly's proxy opens to the internet: start-up stops instead.
METRICS_PORT: int | None = _env.port("METRICS_PORT", 9091) if os.environ.get("METRICS_PORT", "9091").strip() else None
if METRICS_PORT is not None and METRICS_PORT == PORT and "PORT" not in _env.refused:
    _env.problem(
        f"METRICS_PORT must not be PORT ({METRICS_PORT}): the metrics would be public; pick another port, or empty to turn them off"
    )
# The address they listen on: on Fly the machine's private IPv6 address (fly-local-6pn, in
# /etc/hosts), which Fly's scraper reaches and the internet does not; elsewhere this machine only.
METRICS_ADDRESS = os.environ.get("METRICS_ADDRESS", "").strip() or ("fly-local-6pn" if ON_FLY else "127.0.0.1")

# Error reports (the DEBUG page, and any handler that formats one) hide the
# caller's Digits and PIN_PEPPER as well as Django's usual secrets.
DEFAULT_EXCEPTION_REPORTER_FILTER = "myibot.reporting.CallerSafeExceptionReporterFilter"

LOG_LEVEL = _env.choice(
    "LOG_LEVEL", "WARNING" if OPERATOR_COMMAND else "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # Django sets the process's clock to TIME_ZONE: the offset keeps an hour the clocks repeat apart.
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s", "datefmt": "%Y-%m-%d %H:%M:%S%z"},
    },
    # No line names a card's token, whoever logs it (a library naming a URL).
    "filters": {"card_tokens": {"()": "myibot.reporting.CardTokensHidden"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["card_tokens"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # With DEBUG on, Django logs every SQL statement with its parameters,
        # which carry what callers typed (member IDs, amounts): never at any LOG_LEVEL.
        "django.db.backends": {"level": "INFO", "propagate": True},
        # Stripe's library logs every request's URL at INFO; our commands say what they did themselves.
        "stripe": {"level": "WARNING", "propagate": True},
        # At DEBUG, urllib3 logs each request line, and Stripe's name a card's token (GET /v1/payment_methods/pm_...).
        "urllib3": {"level": "INFO", "propagate": True},
    },
}

# Every problem found above, at once, one line each; manage.py and myibot/wsgi.py print them without a traceback.
_env.check()

# Once: runserver's autoreloader imports the settings again in its child (RUN_MAIN).
if _development_stand_ins and not OPERATOR_COMMAND and os.environ.get("RUN_MAIN") != "true":
    # Logging is not configured yet; this is the one place settings speak.
    sys.stderr.write(
        f"WARNING: DEBUG is on and {', '.join(_development_stand_ins)} not set: "
        "insecure development values stand in. Never run like this in production.\n"
    )
