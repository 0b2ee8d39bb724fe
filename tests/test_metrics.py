"""Prometheus metrics in one process: each event moves its series, labels stay bounded, nothing breaks a call.

Across gunicorn's workers: tests/e2e/test_metrics_gunicorn.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import transaction
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from accounts import activity
from accounts.models import ActivityKind, HourlyActivity
from bench.servers import free_port
from ivr import metrics as ivr_metrics
from myibot import metrics

ROOT = Path(__file__).resolve().parent.parent


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def total(name: str) -> float:
    """A sample summed over every label set, as sum(name) would."""
    return sum(sample.value for family in REGISTRY.collect() for sample in family.samples if sample.name == name)


EVENTS: list[tuple[Callable[[], None], str, str | None]] = [
    (activity.call_started, "myibot_calls_total", ActivityKind.CALL),
    (activity.signed_in, "myibot_sign_ins_total", ActivityKind.SIGN_IN),
    (activity.sign_in_failed, "myibot_sign_in_failures_total", ActivityKind.FAILED_PIN),
    (activity.account_locked, "myibot_locks_total", ActivityKind.LOCK),
    (activity.spray_started, "myibot_sprays_total", None),
]


@pytest.mark.parametrize(("event", "series", "kind"), EVENTS, ids=[series for _, series, _ in EVENTS])
def test_it_counts_each_event_in_its_series_and_still_by_the_hour(
    db, django_capture_on_commit_callbacks, event, series, kind
):
    before = value(series)
    with django_capture_on_commit_callbacks(execute=True):
        event()
    assert value(series) == before + 1
    if kind is not None:
        assert HourlyActivity.objects.get(kind=kind).count == 1


def test_it_counts_a_transfer_and_its_cents(db, django_capture_on_commit_callbacks):
    transfers, cents = value("myibot_transfers_total"), value("myibot_transfer_cents_total")
    with django_capture_on_commit_callbacks(execute=True):
        activity.transfer_submitted(25_00)
        activity.transfer_submitted(1_50)
    assert value("myibot_transfers_total") == transfers + 2
    assert value("myibot_transfer_cents_total") == cents + 26_50


def test_it_does_not_count_an_event_whose_transaction_rolls_back(db, django_capture_on_commit_callbacks):
    before = {
        series: value(series) for series in ("myibot_calls_total", "myibot_transfers_total", "myibot_sign_ins_total")
    }
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        contextlib.suppress(RuntimeError),
        transaction.atomic(),
    ):
        activity.call_started()
        activity.signed_in()
        activity.transfer_submitted(10_00)
        raise RuntimeError("over the time budget")
    assert callbacks == []
    assert {series: value(series) for series in before} == before
    assert not HourlyActivity.objects.exists(), "the hourly counts rolled back with it"


def test_it_counts_a_webhook_by_step_and_outcome_with_its_latency():
    labels = {"step": "pin", "outcome": "to menu"}
    count, under_250_ms, under_100_ms = (
        value("myibot_webhooks_total", **labels),
        value("myibot_webhook_seconds_bucket", step="pin", le="0.25"),
        value("myibot_webhook_seconds_bucket", step="pin", le="0.1"),
    )
    ivr_metrics.webhook_answered("pin", "to menu", 0.2)
    assert value("myibot_webhooks_total", **labels) == count + 1
    assert value("myibot_webhook_seconds_bucket", step="pin", le="0.25") == under_250_ms + 1
    assert value("myibot_webhook_seconds_bucket", step="pin", le="0.1") == under_100_ms


def test_its_latency_buckets_reach_twilios_fifteen_seconds():
    assert ivr_metrics.WEBHOOK_SECONDS_BUCKETS[-2:] == (10, 15)
    before = value("myibot_webhook_seconds_bucket", step="menu", le="15.0")
    ivr_metrics.webhook_answered("menu", "to balance", 12.0)
    assert value("myibot_webhook_seconds_bucket", step="menu", le="15.0") == before + 1


@pytest.mark.parametrize(
    ("step", "outcome"),
    [
        ("entry", "started"),
        ("pin", "to menu"),
        ("entry", "empty, to home_options"),
        ("language", "empty, to member_id"),
        ("locked", "empty, goodbye"),
        ("pin", "wrong keys three times, to member_id"),
        ("send_amount", "refused 3 times, to menu"),
        ("balance", "silent three times, to menu"),
        ("register_create_pin", "refused 5 times"),
        ("send_confirm", "goodbye"),
        ("menu", "refused"),
        ("menu", "help"),
        ("balance", "star"),
        ("member_id", "language switched"),
        ("menu", "to staff"),
        ("staff call", "staff call no-answer"),
        ("entry", "no CallSid"),
        ("status completed", "forgotten"),
        ("status in-progress", "noted"),
        ("fallback", "apology"),
        ("send_confirm", "database too slow"),
        ("-", "failed"),
    ],
)
def test_it_keeps_every_step_and_outcome_the_code_writes(step, outcome):
    assert (ivr_metrics.step_label(step), ivr_metrics.outcome_label(outcome)) == (step, outcome)


@pytest.mark.parametrize(
    ("step", "outcome", "labels"),
    [
        # A step name comes from the URL: a signed request may still name any slug.
        ("CA0123456789abcdef0123456789abcdef", "stale", ("other", "stale")),
        ("/twilio/step/3971", "200", ("other", "other")),
        ("status 5551230001", "noted", ("status other", "noted")),
        ("status ", "noted", ("status other", "noted")),
        ("pin", "to 5551230001", ("pin", "other")),
        ("pin", "to no_such_step", ("pin", "other")),
        ("pin", "wrong keys three times, to 3971", ("pin", "other")),
        ("send_amount", "amount 2500", ("send_amount", "other")),
        ("staff call", "staff call 3971", ("staff call", "other")),
    ],
)
def test_it_never_makes_a_label_from_a_value_it_does_not_know(step, outcome, labels):
    assert (ivr_metrics.step_label(step), ivr_metrics.outcome_label(outcome)) == labels
    before = value("myibot_webhooks_total", step=labels[0], outcome=labels[1])
    ivr_metrics.webhook_answered(step, outcome, 0.01)
    assert value("myibot_webhooks_total", step=labels[0], outcome=labels[1]) == before + 1


def test_it_counts_every_webhook_a_call_makes(phone, account):
    webhooks, observed = total("myibot_webhooks_total"), total("myibot_webhook_seconds_count")
    phone.dial()
    phone.press("3971")
    phone.hang_up()
    assert total("myibot_webhooks_total") == webhooks + len(phone.responses) == webhooks + 3
    assert total("myibot_webhook_seconds_count") == observed + 3
    assert value("myibot_webhooks_total", step="entry", outcome="to menu") >= 1


def test_it_answers_a_call_when_a_metric_cannot_be_written(phone, account, monkeypatch, caplog):
    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ivr_metrics.WEBHOOKS, "labels", full_disk)
    answer = phone.dial()
    assert "enter your 4-digit PIN" in answer.text
    assert "a metric was not recorded" in caplog.text


def test_it_adds_up_what_every_process_wrote_and_serves_it():
    """prometheus_client's multiprocess mode, as gunicorn's workers run it: two processes, one sum, over HTTP."""
    count = (
        "import django; django.setup(); from accounts import activity; from ivr import metrics; "
        "activity.CALLS.inc(); metrics.WEBHOOKS.labels(step='pin', outcome='to menu').inc(2)"
    )
    with tempfile.TemporaryDirectory(prefix="myibot-metrics-test-") as folder:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder, "DJANGO_SETTINGS_MODULE": "tests.settings"}
        for _ in range(2):
            subprocess.run([sys.executable, "-c", count], cwd=ROOT, env=env, check=True, timeout=60)
        registry = metrics.multiprocess_registry(folder)
        assert registry.get_sample_value("myibot_calls_total") == 2
        assert registry.get_sample_value("myibot_webhooks_total", {"step": "pin", "outcome": "to menu"}) == 4

        port = free_port()
        server = metrics.serve(port, folder, addr="127.0.0.1")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}
        finally:
            server.shutdown()
            server.server_close()
        assert [sample.value for sample in families["myibot_calls"].samples] == [2]


def setting_in_a_subprocess(name: str, **env: str) -> subprocess.CompletedProcess:
    """A setting as production settings read it from env alone, printed by a fresh process."""
    production = {
        "DEBUG": "false",
        "SECRET_KEY": "prod-" + "k" * 50,
        "TWILIO_AUTH_TOKEN": "prod-token",
        "BASE_URL": "https://myibot.fly.dev",
        "PIN_PEPPER": "prod-pepper",
    }
    ours = ("DJANGO_SETTINGS_MODULE", "METRICS_PORT", "METRICS_ADDRESS", "PORT", "FLY_APP_NAME", "TRUST_FLY_CLIENT_IP")
    clean = {k: v for k, v in os.environ.items() if k not in ours}
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", f"from django.conf import settings; print(settings.{name})"],
        cwd=ROOT,
        env={**clean, **production, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_in_a_subprocess(**env: str) -> subprocess.CompletedProcess:
    return setting_in_a_subprocess("METRICS_PORT", **env)


@pytest.mark.parametrize(
    ("env", "port"), [({}, "9091"), ({"METRICS_PORT": "9100"}, "9100"), ({"METRICS_PORT": ""}, "None")]
)
def test_it_reads_metrics_port_from_the_environment(env, port):
    result = settings_in_a_subprocess(**env)
    assert result.stdout.splitlines()[-1:] == [port], result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"METRICS_PORT": "3001"}, "METRICS_PORT must not be PORT (3001)"),
        ({"METRICS_PORT": "8080", "PORT": "8080"}, "METRICS_PORT must not be PORT (8080)"),
        ({"METRICS_PORT": "metrics"}, "METRICS_PORT must be a whole number"),
        ({"METRICS_PORT": "70000"}, "METRICS_PORT must be a port number"),
    ],
)
def test_it_refuses_to_start_with_metrics_on_the_public_port_or_no_port(env, message):
    result = settings_in_a_subprocess(**env)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("env", "address"),
    [
        ({}, "127.0.0.1"),
        ({"FLY_APP_NAME": "myibot"}, "fly-local-6pn"),
        ({"METRICS_ADDRESS": "::1"}, "::1"),
        ({"FLY_APP_NAME": "myibot", "METRICS_ADDRESS": "127.0.0.1"}, "127.0.0.1"),
    ],
)
def test_it_listens_on_this_machine_only_unless_on_fly(env, address):
    result = setting_in_a_subprocess("METRICS_ADDRESS", **env)
    assert result.stdout.splitlines()[-1:] == [address], result.stderr
