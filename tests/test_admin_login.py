"""Admin sign-in is throttled (django-axes): per client address, and per username at that address; never the webhooks.

Never per username alone: failures elsewhere must not lock an operator out of their own desk.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client

from ivr.models import CallSession
from tests.test_metrics import setting_in_a_subprocess

pytestmark = pytest.mark.django_db

PASSWORD = "a long admin passphrase 8d1f"
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture(autouse=True)
def behind_fly(settings):
    """As on Fly, where its proxy sets Fly-Client-IP; tests of the other case turn it off."""
    settings.TRUST_FLY_CLIENT_IP = True


@pytest.fixture
def operator():
    return get_user_model().objects.create_superuser("operator", "ops@example.com", PASSWORD)


def sign_in(client: Client, username: str, password: str, *, address: str = "203.0.113.7"):
    """The admin's login form, posted through Fly's proxy from address."""
    return client.post(LOGIN, {"username": username, "password": password}, secure=True, HTTP_FLY_CLIENT_IP=address)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(client: Client, times: int, *, username: str = "operator", addresses: list[str] | None = None) -> None:
    for attempt in range(times):
        address = addresses[attempt] if addresses else "203.0.113.7"
        response = sign_in(client, username, f"wrong {attempt}", address=address)
        assert not signed_in(client)
        if attempt < 4:
            assert response.status_code == 200, "the login form again, with its error"


def test_it_signs_in_with_the_right_password(client, operator):
    response = sign_in(client, "operator", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_four_failures_do_not_lock(client, operator):
    fail(client, 4)
    assert sign_in(client, "operator", PASSWORD).status_code == 302
    assert signed_in(client)


def test_it_locks_a_username_after_five_failures_even_for_the_right_password(client, operator):
    fail(client, 5)
    response = sign_in(client, "operator", PASSWORD)
    assert response.status_code == 429
    assert not signed_in(client)


def test_it_never_locks_an_operator_out_from_their_own_address(client, operator):
    # Someone elsewhere fails five times for the operator's name, from one address and then from five.
    fail(client, 5, addresses=["198.51.100.23"] * 5)
    fail(client, 5, addresses=[f"198.51.100.{n}" for n in range(1, 6)])
    assert sign_in(client, "operator", "wrong", address="198.51.100.23").status_code == 429
    response = sign_in(client, "operator", PASSWORD, address="192.0.2.99")
    assert response.status_code == 302
    assert signed_in(client)


def test_it_locks_the_address_that_failed_five_times_and_no_other(client, operator, django_user_model):
    django_user_model.objects.create_superuser("colleague", "c@example.com", PASSWORD)
    fail(client, 4, addresses=["198.51.100.23"] * 4)
    sign_in(client, "nobody", "wrong", address="192.0.2.50")  # another address's failure adds nothing here
    sign_in(client, "operator", "wrong 4", address="198.51.100.23")
    assert sign_in(client, "operator", PASSWORD, address="198.51.100.23").status_code == 429
    assert sign_in(client, "colleague", PASSWORD, address="198.51.100.23").status_code == 429
    assert sign_in(client, "colleague", PASSWORD, address="192.0.2.99").status_code == 302


def test_it_locks_an_address_after_five_failures_across_usernames(client, operator):
    for n in range(5):
        sign_in(client, f"guess{n}", "wrong", address="198.51.100.23")
    response = sign_in(client, "operator", PASSWORD, address="198.51.100.23")
    assert response.status_code == 429
    assert not signed_in(client)


def test_a_locked_address_does_not_lock_the_username_elsewhere(client, operator):
    for n in range(5):
        sign_in(client, f"guess{n}", "wrong", address="198.51.100.23")
    assert sign_in(client, "operator", PASSWORD, address="192.0.2.99").status_code == 302
    assert signed_in(client)


def test_the_lock_lifts_after_fifteen_minutes(client, operator):
    fail(client, 5)
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=15, seconds=1)
    )
    assert sign_in(client, "operator", PASSWORD).status_code == 302
    assert signed_in(client)


def test_it_takes_the_address_from_fly_client_ip(client, operator):
    sign_in(client, "operator", "wrong", address="2001:db8::7")
    assert AccessAttempt.objects.get().ip_address == "2001:db8::7"


@pytest.mark.parametrize("header", ["127.0.0.1, 10.0.0.1", "not-an-address", "999.1.1.1", ""])
def test_it_falls_back_to_remote_addr_when_fly_client_ip_is_not_an_address(client, operator, header):
    client.post(
        LOGIN,
        {"username": "operator", "password": "wrong"},
        secure=True,
        HTTP_FLY_CLIENT_IP=header,
        REMOTE_ADDR="192.0.2.5",
    )
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["192.0.2.5"]


def test_it_ignores_fly_client_ip_unless_told_it_is_behind_fly(client, operator, settings):
    settings.TRUST_FLY_CLIENT_IP = False
    sign_in(client, "operator", "wrong", address="2001:db8::7")
    assert AccessAttempt.objects.get().ip_address == "127.0.0.1"  # the test client's REMOTE_ADDR


def test_a_rotating_fly_client_ip_still_locks_the_real_address_when_not_behind_fly(client, operator, settings):
    # Off Fly anyone can send the header: a new address with every guess must not buy new guesses.
    settings.TRUST_FLY_CLIENT_IP = False
    fail(client, 5, addresses=[f"198.51.100.{n}" for n in range(1, 6)])
    response = sign_in(client, "operator", PASSWORD, address="198.51.100.77")
    assert response.status_code == 429
    assert not signed_in(client)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("env", "trusted"),
    [
        ({}, "False"),
        ({"FLY_APP_NAME": "myibot"}, "True"),
        ({"FLY_APP_NAME": "myibot", "TRUST_FLY_CLIENT_IP": "false"}, "False"),
        ({"TRUST_FLY_CLIENT_IP": "true"}, "True"),
    ],
)
def test_it_trusts_fly_client_ip_by_default_only_on_fly(env, trusted):
    result = setting_in_a_subprocess("TRUST_FLY_CLIENT_IP", **env)
    assert result.stdout.splitlines()[-1:] == [trusted], result.stderr


def test_it_never_stores_or_logs_the_password(client, operator, caplog):
    with caplog.at_level(logging.DEBUG):
        fail(client, 5)
        sign_in(client, "operator", PASSWORD)
    attempt = AccessAttempt.objects.get()
    assert "wrong" not in attempt.post_data
    assert PASSWORD not in attempt.post_data
    assert "wrong 0" not in caplog.text
    assert PASSWORD not in caplog.text


def test_a_webhook_is_unaffected_by_a_locked_address(client, phone, operator):
    # The test client's REMOTE_ADDR, which is also where the phone's webhooks come from.
    for n in range(6):
        client.post(LOGIN, {"username": f"guess{n}", "password": "wrong"}, secure=True)
    attempts = AccessAttempt.objects.count()
    answer = phone.dial(language=None)
    assert "Welcome" in answer.text
    assert CallSession.objects.filter(call_sid=phone.call_sid).exists()
    assert phone.post("/twilio/voice", signed=False).status_code == 403
    assert AccessAttempt.objects.count() == attempts


def test_a_webhook_never_queries_axes(phone, django_assert_num_queries, settings):
    # A refused webhook runs no query at all: nothing of axes runs outside the admin's login.
    with django_assert_num_queries(0):
        assert phone.post("/twilio/voice", signed=False).status_code == 403
