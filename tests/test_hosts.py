"""A host this server does not answer for: 403 and the reason, as for a bad signature; never a 400 and a traceback."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def test_a_webhook_for_another_host_is_refused_with_403_and_one_log_line(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.post("/twilio/voice", {"CallSid": "CA1"}, HTTP_HOST="old-tunnel.trycloudflare.com")
    assert response.status_code == 403
    assert b"this server answers for the host of its BASE_URL" in response.content
    refusals = [record for record in caplog.records if record.name == "myibot.hosts"]
    assert [record.getMessage() for record in refusals] == [
        "request refused: host old-tunnel.trycloudflare.com is not this server's (BASE_URL's host, or ALLOWED_HOSTS) "
        "path=/twilio/voice"
    ]
    assert refusals[0].exc_info is None
    assert not [record for record in caplog.records if record.name.startswith("django.security")]


def test_a_forged_host_cannot_write_a_log_line_of_its_own(client, caplog):
    with caplog.at_level(logging.WARNING, logger="myibot.hosts"):
        response = client.get("/admin/", HTTP_HOST="evil.example\nWARNING forged")
    assert response.status_code == 403
    (record,) = [record for record in caplog.records if record.name == "myibot.hosts"]
    assert "\n" not in record.getMessage() and "evil.exampleWARNING forged" in record.getMessage()


def test_the_health_check_still_answers_for_any_host(client, db):
    assert client.get("/healthz", HTTP_HOST="172.19.5.3:3001").status_code == 200


@pytest.mark.django_db
def test_a_call_signed_for_another_host_is_explained_as_a_wrong_base_url():
    with pytest.raises(CommandError) as failure:
        call_command("call", "--keys", "3971", "--base-url", "https://wrong.example", stdout=StringIO())
    message = str(failure.value)
    assert message.startswith("the server answered 403")
    assert "Check --base-url (now https://wrong.example: it must be the URL the server signs against" in message
