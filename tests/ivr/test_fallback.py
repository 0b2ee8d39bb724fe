"""Twilio's fallback URL: a calm goodbye from static words, and Twilio's error in our logs, safely."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def fallback_log(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "ivr.views"]


def test_it_says_a_calm_goodbye_without_the_database(phone, django_assert_num_queries):
    with django_assert_num_queries(0):
        answer = phone.twiml(phone.post("/twilio/fallback", {"ErrorCode": "11200", "ErrorUrl": "https://x/y"}))
    assert answer.verbs == ["Say", "Say", "Hangup"], "in every language offered"
    assert answer.text == (
        "We are sorry. This service is temporarily unavailable. Please call again later. Goodbye. "
        "Lo sentimos. Este servicio no está disponible por el momento. Por favor, llame más tarde. Adiós."
    )


def test_it_logs_twilios_error_code_and_the_path_of_the_url_that_failed(phone, caplog):
    params = {"ErrorCode": "11200", "ErrorUrl": "https://testserver/twilio/step/pin?n=4&no_input=1"}
    with caplog.at_level(logging.WARNING, logger="ivr.views"):
        phone.twiml(phone.post("/twilio/fallback", params))
    assert fallback_log(caplog) == [f"twilio fallback: call=…{phone.call_sid[-6:]} error=11200 url=/twilio/step/pin"]


def test_it_never_logs_the_query_of_the_url_that_failed(phone, caplog):
    params = {"ErrorCode": "11205", "ErrorUrl": "https://testserver/twilio/step/amount?n=7&Digits=3971#rc=2"}
    with caplog.at_level(logging.WARNING, logger="ivr.views"):
        phone.twiml(phone.post("/twilio/fallback", params))
    assert "3971" not in caplog.text
    assert "n=7" not in caplog.text
    assert fallback_log(caplog)[0].endswith("error=11205 url=/twilio/step/amount")


@pytest.mark.parametrize(
    ("error_code", "error_url", "logged"),
    [
        ("11200\nERROR forged line", "https://x/a", "error=11200ERROR url=/a"),
        ("1\r\n2", "https://x/a\r\nWARNING forged url=/evil", "error=12 url=/aWARNINGforgedurl/evil"),
        ("", "", "error=- url=-"),
        ("<script>", "javascript:alert(1)", "error=script url=alert1"),
        ("9" * 500, "https://x/" + "p" * 500 + "?q=1", "error=9999999999 url=/" + "p" * 119),
        ("11200", "http://[::1", "error=11200 url=-"),
    ],
)
def test_it_logs_only_safe_characters_of_limited_length(phone, caplog, error_code, error_url, logged):
    with caplog.at_level(logging.WARNING, logger="ivr.views"):
        phone.twiml(phone.post("/twilio/fallback", {"ErrorCode": error_code, "ErrorUrl": error_url}))
    [line] = fallback_log(caplog)
    assert line.endswith(logged)
    assert "\n" not in line and "\r" not in line


def test_it_logs_a_call_label_of_letters_and_digits_only(phone, caplog):
    phone.call_sid = "CA0123456789\nINFO forged"
    with caplog.at_level(logging.INFO):
        phone.twiml(phone.post("/twilio/fallback", {"ErrorCode": "11200"}))
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert all("\n" not in message and "call=…forged " in message for message in messages)


def test_it_still_refuses_an_unsigned_fallback(phone):
    assert phone.post("/twilio/fallback", {"ErrorCode": "11200"}, signed=False).status_code == 403


@pytest.mark.parametrize("document", ["README.md", "docs/TWILIO.md"])
def test_the_documented_twiml_bin_says_what_our_fallback_says(phone, document):
    text = (ROOT / document).read_text()
    bin_xml = re.findall(r"```xml\n(.*?)```", text, re.DOTALL)[
        0
    ]  # the members' number's (README: then the deposit line's)
    documented = ET.fromstring(bin_xml.encode())
    ours = phone.twiml(phone.post("/twilio/fallback")).root
    assert [child.tag for child in documented] == [child.tag for child in ours] == ["Say", "Say", "Hangup"]
    for documented_say, our_say in zip(documented[:2], ours[:2], strict=True):
        assert documented_say.text == our_say.text
        assert documented_say.attrib == our_say.attrib
    assert ours[0].attrib == {"voice": "Polly.Joanna", "language": "en-US"}
    assert ours[1].attrib == {"voice": "Polly.Lupe", "language": "es-US"}


def test_the_deposit_lines_documented_twiml_bin_says_what_its_fallback_says(phone):
    """The deposit number's bin lives on its PCI subaccount (README, Deploy): the same words as ours."""
    bins = re.findall(r"```xml\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert len(bins) == 2
    documented = ET.fromstring(bins[1].encode())
    ours = phone.twiml(phone.post("/twilio/deposit/fallback")).root
    assert [child.tag for child in documented] == [child.tag for child in ours] == ["Say", "Say", "Hangup"]
    for documented_say, our_say in zip(documented[:2], ours[:2], strict=True):
        assert (documented_say.text, documented_say.attrib) == (our_say.text, our_say.attrib)
