"""Webhook signatures beyond the one Auth Token: a second token while rotating, and Webhook Rules' shared keys."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings as django_settings
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, SIGNATURE_SETTINGS_HEADER, RequestValidator

from ivr.models import CallSession

pytestmark = pytest.mark.django_db

SECONDARY = "test-secondary-auth-token"
SHARED_KEY = "test-webhook-shared-key-secret"
SETTINGS_META = "HTTP_" + SIGNATURE_SETTINGS_HEADER.upper().replace("-", "_")


def body(phone) -> dict[str, str]:
    return {"CallSid": phone.call_sid, "From": phone.caller, "To": "+12025000000", "CallStatus": "in-progress"}


def post(
    phone,
    secret: str,
    *,
    algorithm: str | None = None,
    signature_settings: str | None = None,
    signed_url: str | None = None,
):
    """POST /twilio/voice signed with secret, as Twilio signs: HMAC-SHA1 with a token, or a shared key's algorithm."""
    params = body(phone)
    url = signed_url or django_settings.BASE_URL + "/twilio/voice"
    headers = {"HTTP_X_TWILIO_SIGNATURE": RequestValidator(secret).compute_signature(url, params, algorithm)}
    if signature_settings is not None:
        headers[SETTINGS_META] = signature_settings
    return phone.client.post("/twilio/voice", params, secure=True, **headers)


def shared_key_header(algorithm: str) -> str:
    return f"key=webhooks_sharedkey_0123456789abcdef,algorithm={algorithm}"


@pytest.fixture
def rotating(settings):
    settings.TWILIO_SECONDARY_AUTH_TOKEN = SECONDARY
    return settings


@pytest.fixture
def shared_key(settings):
    settings.TWILIO_WEBHOOK_SHARED_KEY = SHARED_KEY
    return settings


def test_a_signature_over_the_url_with_its_port_is_accepted_too(phone):
    # Some Twilio products sign https://host:443/...: one HMAC settles the usual case, the port is tried after.
    assert django_settings.BASE_URL == "https://testserver"
    with_port = post(phone, django_settings.TWILIO_AUTH_TOKEN, signed_url="https://testserver:443/twilio/voice")
    assert with_port.status_code == 200
    elsewhere = post(phone, django_settings.TWILIO_AUTH_TOKEN, signed_url="https://testserver:8443/twilio/voice")
    assert elsewhere.status_code == 403


def test_it_accepts_the_primary_token_beside_a_secondary(phone, rotating):
    assert post(phone, rotating.TWILIO_AUTH_TOKEN).status_code == 200


def test_it_accepts_the_secondary_token(phone, rotating):
    response = post(phone, SECONDARY)
    assert response.status_code == 200
    assert CallSession.objects.filter(call_sid=phone.call_sid).exists()


def test_it_refuses_a_third_token(phone, rotating):
    assert post(phone, "some-other-auth-token").status_code == 403
    assert not CallSession.objects.exists()


def test_it_refuses_the_secondary_token_when_none_is_set(phone, settings):
    settings.TWILIO_SECONDARY_AUTH_TOKEN = ""
    assert post(phone, SECONDARY).status_code == 403


def test_it_never_takes_an_empty_secondary_token_as_a_key(phone, settings):
    settings.TWILIO_SECONDARY_AUTH_TOKEN = ""
    assert post(phone, "").status_code == 403


@pytest.mark.parametrize("algorithm", [HMAC_SHA256, HMAC_SHA1])
def test_it_accepts_a_shared_key_signature_with_the_algorithm_the_header_names(phone, shared_key, algorithm):
    response = post(phone, SHARED_KEY, algorithm=algorithm, signature_settings=shared_key_header(algorithm))
    assert response.status_code == 200
    assert CallSession.objects.filter(call_sid=phone.call_sid).exists()


def test_it_refuses_a_shared_key_signature_made_with_another_algorithm_than_named(phone, shared_key):
    response = post(phone, SHARED_KEY, algorithm=HMAC_SHA1, signature_settings=shared_key_header(HMAC_SHA256))
    assert response.status_code == 403


def test_it_refuses_a_shared_key_header_signed_with_a_wrong_key(phone, shared_key):
    response = post(
        phone, "not-the-shared-key", algorithm=HMAC_SHA256, signature_settings=shared_key_header(HMAC_SHA256)
    )
    assert response.status_code == 403
    assert not CallSession.objects.exists()


def test_it_refuses_a_shared_key_header_on_a_request_signed_with_the_auth_token(phone, shared_key):
    response = post(phone, shared_key.TWILIO_AUTH_TOKEN, signature_settings=shared_key_header(HMAC_SHA1))
    assert response.status_code == 403


def test_it_refuses_a_shared_key_signature_without_its_header(phone, shared_key):
    assert post(phone, SHARED_KEY, algorithm=HMAC_SHA256).status_code == 403


@pytest.mark.parametrize(
    "signature_settings",
    [
        "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA512",
        "key=webhooks_sharedkey_0123,algorithm=",
        "key=webhooks_sharedkey_0123",
        "",
    ],
)
def test_it_refuses_an_unknown_algorithm(phone, shared_key, signature_settings, caplog):
    with caplog.at_level(logging.WARNING, logger="ivr.decorators"):
        response = post(phone, SHARED_KEY, algorithm=HMAC_SHA256, signature_settings=signature_settings)
    assert response.status_code == 403
    assert "unknown signature algorithm" in caplog.text


def test_it_refuses_a_shared_key_request_when_no_shared_key_is_set(phone, settings, caplog):
    settings.TWILIO_WEBHOOK_SHARED_KEY = ""
    with caplog.at_level(logging.WARNING, logger="ivr.decorators"):
        response = post(phone, "", algorithm=HMAC_SHA256, signature_settings=shared_key_header(HMAC_SHA256))
    assert response.status_code == 403
    assert "no TWILIO_WEBHOOK_SHARED_KEY" in caplog.text


def test_it_refuses_a_shared_key_request_with_debug_on_too(phone, settings):
    settings.DEBUG = True
    settings.TWILIO_WEBHOOK_SHARED_KEY = ""
    assert post(phone, "x", algorithm=HMAC_SHA256, signature_settings=shared_key_header(HMAC_SHA256)).status_code == 403


def test_it_signs_against_base_url_path_and_query_with_a_shared_key(phone, shared_key):
    params = body(phone)
    path = "/twilio/step/entry?n=1"
    signature = RequestValidator(SHARED_KEY).compute_signature(shared_key.BASE_URL + path, params, HMAC_SHA256)
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature, SETTINGS_META: shared_key_header(HMAC_SHA256)}
    assert phone.client.post(path, params, secure=True, **headers).status_code == 200
    assert phone.client.post("/twilio/step/entry?n=2", params, secure=True, **headers).status_code == 403


def test_it_builds_its_validators_once_not_per_request(phone, rotating):
    from ivr.decorators import _validators

    post(phone, SECONDARY)
    before = _validators.cache_info()
    post(phone, SECONDARY)
    after = _validators.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
