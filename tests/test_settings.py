"""Settings from the environment, production checks, and error reports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "prod-" + "k" * 50,
    "TWILIO_AUTH_TOKEN": "prod-token",
    "BASE_URL": "https://myibot.fly.dev",
    "PIN_PEPPER": "prod-pepper",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("missing", ["SECRET_KEY", "TWILIO_AUTH_TOKEN", "BASE_URL", "PIN_PEPPER"])
def test_it_refuses_to_start_without_a_required_secret(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage("check", **env)
    assert result.returncode != 0
    assert f"{missing} is required when DEBUG is off" in result.stderr


def test_every_missing_or_invalid_setting_is_named_at_once_one_line_each_without_a_traceback():
    result = manage(
        "check", DEBUG="false", TIME_ZONE="Mars/Olympus", IVR_VOICE_ES="man", TRANSFER_LIMIT_DOLLARS="lots", PORT="0"
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "MyiBot cannot start: 8 settings are missing or invalid (README, Configuration):",
        "  PORT must be a port number (1 to 65535), not 0",
        "  SECRET_KEY is required when DEBUG is off; set it in the environment",
        "  TWILIO_AUTH_TOKEN is required when DEBUG is off; set it in the environment",
        "  BASE_URL is required when DEBUG is off; set it in the environment",
        "  PIN_PEPPER is required when DEBUG is off; set it in the environment",
        "  TIME_ZONE must be an IANA time zone such as America/New_York or UTC, not 'Mars/Olympus'",
        "  IVR_VOICE_ES: Twilio's basic voice 'man' speaks English only",
        "  TRANSFER_LIMIT_DOLLARS must be a whole number, not 'lots'",
    ]


def test_gunicorn_names_them_the_same_way_and_stops_without_a_traceback():
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k != "DJANGO_SETTINGS_MODULE"}
    env = {**clean, **PRODUCTION, "PIN_PEPPER": "", "CALLER_ID_TRUST": "everyone", "METRICS_PORT": ""}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", "127.0.0.1:0", "myibot.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "MyiBot cannot start: 2 settings are missing or invalid (README, Configuration):",
        "  PIN_PEPPER is required when DEBUG is off; set it in the environment",
        "  CALLER_ID_TRUST must be attested or unless-failed, not 'everyone'",
    ]


def test_a_database_url_it_cannot_read_is_named_without_its_password():
    result = manage("check", **PRODUCTION, DATABASE_URL="postgress://myibot:s3cret@db.internal:5432/myibot")
    assert result.returncode == 1
    assert "DATABASE_URL must be a database URL such as postgres://" in result.stderr
    assert "'postgress'" in result.stderr
    assert "s3cret" not in result.stderr


def test_with_debug_on_the_development_base_url_follows_the_port():
    show = "from django.conf import settings; print(settings.BASE_URL, settings.ALLOWED_HOSTS[0])"
    result = manage("shell", "-c", show, DEBUG="true", PORT="3005")
    assert result.stdout.splitlines()[-1] == "http://127.0.0.1:3005 127.0.0.1", result.stderr
    result = manage("shell", "-c", show, DEBUG="true")
    assert result.stdout.splitlines()[-1] == "http://127.0.0.1:3001 127.0.0.1", result.stderr


def test_debug_is_off_by_default():
    env = {k: v for k, v in PRODUCTION.items() if k != "DEBUG"}
    result = manage(
        "shell", "-c", "from django.conf import settings; print(settings.DEBUG, settings.ALLOWED_HOSTS)", **env
    )
    assert "False ['myibot.fly.dev']" in result.stdout.splitlines(), result.stderr


def test_with_debug_on_development_values_stand_in_with_a_warning():
    result = manage("check", DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert "insecure development values" in result.stderr
    assert "PIN_PEPPER" in result.stderr


def test_it_refuses_a_base_url_with_a_path():
    result = manage("check", **{**PRODUCTION, "BASE_URL": "https://myibot.fly.dev/app"})
    assert result.returncode != 0
    assert "BASE_URL must be an origin" in result.stderr


def test_the_deploy_checks_pass_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_allowed_hosts_and_trusted_origins_come_from_base_url(settings):
    from django.conf import settings as live

    assert set(live.ALLOWED_HOSTS) == {"testserver"}  # pytest-django appends it once more
    assert live.CSRF_TRUSTED_ORIGINS == ["https://testserver"]
    assert live.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    assert live.SECURE_SSL_REDIRECT and live.SESSION_COOKIE_SECURE and live.CSRF_COOKIE_SECURE
    assert live.SECURE_HSTS_SECONDS >= 31536000


def test_the_forwarded_proto_header_counts_as_https(client, db):
    response = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200


def test_error_reports_hide_digits_and_the_pepper(settings):
    request = RequestFactory().post("/twilio/step/entry?n=1", {"Digits": "3971", "CallSid": "CA1"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        report = ExceptionReporter(request, *sys.exc_info()).get_traceback_text()
    assert "3971" not in report
    assert settings.PIN_PEPPER not in report
    assert settings.TWILIO_AUTH_TOKEN not in report


def test_the_pin_hasher_is_listed_first_with_djangos_after_it(settings):
    assert settings.PASSWORD_HASHERS[:2] == [
        "accounts.hashers.PinArgon2idHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
    ]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"IVR_VOICE_ES": "Polly.Joanna"}, "IVR_VOICE_ES: Polly.Joanna speaks en-US, not es-US"),
        ({"IVR_VOICE_EN": "Polly.Lupe"}, "IVR_VOICE_EN: Polly.Lupe speaks es-US, not en-US"),
        ({"IVR_VOICE_ES": "Polly.Nobody"}, "not a Polly voice"),
        ({"IVR_VOICE_ES": "Google.en-US-Neural2-A"}, "does not speak es-US"),
        ({"IVR_VOICE_ES": "man"}, "speaks English only"),
        ({"IVR_LOCALE_ES": "en-US"}, "IVR_LOCALE_ES must be a locale of es"),
        ({"IVR_LANGUAGES": "en,fr"}, "IVR_LANGUAGES must list some of en, es"),
        ({"IVR_LANGUAGES": "en,en"}, "IVR_LANGUAGES must list some of en, es"),
        ({"PHONE_REGION": "XX"}, "PHONE_REGION must be a region code"),
    ],
)
def test_it_refuses_to_start_with_a_voice_or_language_that_would_fail_on_a_call(env, message):
    result = manage("check", **PRODUCTION, **env)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"IVR_VOICE_ES": "Polly.Mia", "IVR_LOCALE_ES": "es-MX"},
        {"IVR_VOICE_ES": "Google.es-US-Neural2-B"},
        {"IVR_VOICE_EN": "Polly.Joanna-Neural"},
        {"IVR_LANGUAGES": "es,en"},
        {"IVR_LANGUAGES": "en"},
    ],
)
def test_it_starts_with_a_voice_that_fits_its_language(env):
    result = manage("check", **PRODUCTION, **env)
    assert result.returncode == 0, result.stderr


def test_a_language_record_is_checked_as_start_up_checks_every_record():
    from myibot.languages import RECORDS, record_problem
    from tests.conftest import FRENCH

    assert [record_problem(language) for language in (*RECORDS, FRENCH)] == [None, None, None]
    assert "two lowercase letters, not 'FR'" in record_problem(replace(FRENCH, code="FR"))
    assert "'es-US' is not a locale of fr" in record_problem(replace(FRENCH, locale="es-US"))
    assert "%(key)s" in record_problem(replace(FRENCH, offer="Pour le français, appuyez sur 3."))
    assert "Polly.Lea speaks fr-FR, not fr-CA" in record_problem(replace(FRENCH, locale="fr-CA"))


def test_the_environment_gives_a_registered_language_its_voice():
    from myibot.languages import configured

    registry = configured({"IVR_VOICE_ES": "Polly.Mia", "IVR_LOCALE_ES": "es-MX"})
    assert (registry["es"].voice, registry["es"].locale) == ("Polly.Mia", "es-MX")
    assert (registry["en"].voice, registry["en"].locale) == ("Polly.Joanna", "en-US")


def test_postgresql_connections_carry_their_time_limits_and_bind_values_server_side():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'])",
        **PRODUCTION,
        DATABASE_URL="postgres://u@127.0.0.1:5432/db",
        DB_LOCK_TIMEOUT_MS="2500",
    )
    assert result.returncode == 0, result.stderr
    # Never as libpq's options, which PgBouncer refuses: set on the session, and as the role's settings.
    assert "options" not in result.stdout
    assert "'connect_timeout': 3" in result.stdout and "'server_side_binding': True" in result.stdout
    # A server gone without a word cannot hold a query past the budget.
    assert "'tcp_user_timeout': 4000" in result.stdout and "'keepalives': 1" in result.stdout


@pytest.mark.parametrize(("value", "threshold"), [("", "1"), ("true", "1"), ("false", "None")])
def test_postgresql_uses_our_backend_and_prepared_statements_unless_turned_off(value, threshold):
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['ENGINE'], d['OPTIONS']['prepare_threshold'])",
        **PRODUCTION,
        DATABASE_URL="postgres://u@127.0.0.1:5432/db",
        DB_PREPARED_STATEMENTS=value,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["myibot.postgresql", threshold]


def test_sqlite_waits_for_its_write_lock_no_longer_than_the_lock_timeout():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'])",
        **PRODUCTION,
        DATABASE_URL="sqlite:////tmp/settings-check.sqlite3",
    )
    assert "'timeout': 3.0" in result.stdout, result.stderr


@pytest.mark.parametrize("zone", ["Mars/Olympus", "america/new_york", "../../etc/passwd", "/etc/localtime"])
def test_it_refuses_to_start_with_a_time_zone_it_does_not_know(zone):
    result = manage("check", **PRODUCTION, TIME_ZONE=zone)
    assert result.returncode != 0
    assert f"TIME_ZONE must be an IANA time zone such as America/New_York or UTC, not {zone!r}" in result.stderr


def test_the_service_is_on_new_york_time_by_default_and_the_database_keeps_utc():
    show = "from django.conf import settings; print(settings.TIME_ZONE, settings.USE_TZ)"
    for env, shown in [
        ({"TIME_ZONE": ""}, "America/New_York True"),
        ({"TIME_ZONE": " Europe/Madrid "}, "Europe/Madrid True"),
    ]:
        result = manage("shell", "-c", show, **PRODUCTION, **env)
        assert result.stdout.splitlines()[-1] == shown, result.stderr


def test_every_variable_the_settings_read_is_in_the_readmes_configuration():
    read = set(
        re.findall(
            r'(?:_env\.\w+|_secret|os\.environ\.get)\(\s*"([A-Z_0-9]+)"', (ROOT / "myibot/settings.py").read_text()
        )
    )
    readme = (ROOT / "README.md").read_text()
    configuration = readme[readme.index("## Configuration") : readme.index("## Twilio console set-up")]
    assert "DEPOSIT_MAX_DOLLARS" in read
    # RUN_MAIN is Django's autoreloader's own, not a setting.
    assert sorted(name for name in read - {"RUN_MAIN"} if f"`{name}`" not in configuration) == []


def settings_seen(**env: str) -> dict:
    import json

    result = manage(
        "shell",
        "-c",
        "import json; from django.conf import settings; "
        "print(json.dumps({a: {k: d[k] for k in ('TIME_LIMITS', 'DISABLE_SERVER_SIDE_CURSORS', 'CONN_MAX_AGE', 'PORT')}"
        " | {'prepare_threshold': d['OPTIONS']['prepare_threshold']} for a, d in settings.DATABASES.items()}))",
        **PRODUCTION,
        **env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_directly_each_session_carries_the_limits_and_migrations_have_their_own():
    seen = settings_seen(DATABASE_URL="postgres://u@127.0.0.1:5432/db", DB_LOCK_TIMEOUT_MS="2500")
    assert seen["default"]["TIME_LIMITS"] == {"lock_timeout": 2500, "statement_timeout": 4000, "set_on_connect": True}
    assert seen["direct"]["TIME_LIMITS"] == {"lock_timeout": 60000, "statement_timeout": 0, "set_on_connect": True}
    assert seen["default"]["CONN_MAX_AGE"] == 300 and not seen["default"]["DISABLE_SERVER_SIDE_CURSORS"]


def test_behind_a_transaction_pooler_nothing_rests_on_a_session():
    seen = settings_seen(
        DATABASE_URL="postgres://u@127.0.0.1:6432/db",
        DATABASE_DIRECT_URL="postgres://u@127.0.0.1:5432/db",
        DATABASE_POOLER="transaction",
    )
    default, direct = seen["default"], seen["direct"]
    assert default["TIME_LIMITS"]["set_on_connect"] is False and default["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert default["prepare_threshold"] is None and default["PORT"] == 6432
    assert direct["PORT"] == 5432 and direct["TIME_LIMITS"]["set_on_connect"] is True and direct["CONN_MAX_AGE"] == 0


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"DATABASE_POOLER": "transaction"}, "DATABASE_POOLER=transaction needs DATABASE_DIRECT_URL"),
        ({"DATABASE_POOLER": "statement"}, "DATABASE_POOLER must be direct, session or transaction"),
        ({"CONN_MAX_AGE": "600"}, "CONN_MAX_AGE must be at most 300"),
    ],
)
def test_pooler_settings_that_cannot_work_are_refused(env, problem):
    result = manage("check", **PRODUCTION, DATABASE_URL="postgres://u@127.0.0.1:6432/db", **env)
    assert result.returncode != 0 and problem in result.stderr


def test_base_url_must_be_https_with_debug_off():
    result = manage("check", **{**PRODUCTION, "BASE_URL": "http://myibot.fly.dev"})
    assert result.returncode != 0
    assert "BASE_URL must be https with DEBUG off" in result.stderr
    assert manage("check", **{**PRODUCTION, "BASE_URL": "https://myibot.fly.dev"}).returncode == 0
    debug = {**PRODUCTION, "DEBUG": "true", "BASE_URL": "http://127.0.0.1:3001"}
    assert manage("check", **debug).returncode == 0


def test_a_deposit_secondary_token_without_a_deposit_token_of_its_own_is_refused():
    result = manage("check", **{**PRODUCTION, "TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN": "n" * 32})
    assert result.returncode != 0
    assert "TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN is for a deposit line on a subaccount" in result.stderr
    own = {"TWILIO_DEPOSIT_AUTH_TOKEN": "d" * 32, "TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN": "n" * 32}
    assert manage("check", **{**PRODUCTION, **own}).returncode == 0
    # A members' token as the deposit line's next one would open the deposit line to the members' token.
    crossed = {**own, "TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN": PRODUCTION["TWILIO_AUTH_TOKEN"]}
    result = manage("check", **{**PRODUCTION, **crossed})
    assert result.returncode != 0 and "must be the subaccount's token" in result.stderr
    # And the other way round: the subaccount's next token put in the members' variable by mistake.
    crossed = {**own, "TWILIO_SECONDARY_AUTH_TOKEN": own["TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN"]}
    result = manage("check", **{**PRODUCTION, **crossed})
    assert result.returncode != 0 and "must not be the deposit line's subaccount token" in result.stderr


def test_a_scheduled_machine_given_what_the_readmes_deploy_gives_it_runs_its_command(tmp_path):
    """Deploy, steps 1, 3 and 6: the app's secrets, and `--env` for what fly.toml's [env] gives the app."""
    readme = (ROOT / "README.md").read_text()
    deploy = readme[readme.index("## Deploy (Fly.io)") : readme.index("### Many machines")]
    secrets_file = re.search(r"```\n(SECRET_KEY=\.\.\.\n(?:[A-Z_0-9]+=.*\n)+)```", deploy).group(1)
    secrets = {line.split("=", 1)[0] for line in secrets_file.splitlines()}
    schedules = deploy[deploy.index("**7. The schedules**") : deploy.index("**8.")]
    runs = re.findall(r"fly machine run .*?-- (python /app/manage\.py [a-z_]+[^\n]*)", schedules, re.S)
    given_env = set(re.findall(r"--env ([A-Z_0-9]+)=", schedules))
    assert len(runs) == 2 and given_env == {"BASE_URL"}
    # What the machines get: those secrets (made-up values of the right shape), DATABASE_URL from
    # `fly mpg attach` (a database here), and the --env. Never DEBUG: off.
    values = {
        "SECRET_KEY": "s" * 50,
        "PIN_PEPPER": "p" * 32,
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "TWILIO_DEPOSIT_AUTH_TOKEN": "d" * 32,
        "PAY_CONNECTOR": "Default",
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
        # The database's two roads: a SQLite file here, which has only the one.
        "DATABASE_DIRECT_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DATABASE_POOLER": "session",
        "TIME_ZONE": "America/New_York",
        "STAFF_PHONE_NUMBER": "+12025550100",
        "BASE_URL": "https://myibot.fly.dev",
    }
    assert secrets | given_env <= set(values)
    env = {name: values[name] for name in secrets | given_env}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert manage("migrate", "-v0", **env).returncode == 0
    result = manage("purge_call_sessions", **env)
    assert result.returncode == 0, result.stderr
    # Without the --env, the command stops at start-up: what fly.toml's [env] alone gives the app.
    result = manage("purge_call_sessions", **{k: v for k, v in env.items() if k != "BASE_URL"})
    assert result.returncode == 1 and "BASE_URL is required when DEBUG is off" in result.stderr
