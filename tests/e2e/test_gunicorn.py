"""End to end: real gunicorn processes with production settings, the simulator's phone over HTTP.

Two servers share one database, as two Fly machines do; a server restarts in
the middle; the database goes away; hostile requests hit every step URL; a
lone "#" behaves each way Twilio's docs allow (the fuzzer is in a module of
its own). Runs on PostgreSQL when the suite does, else on a
SQLite file.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from twilio.request_validator import RequestValidator

from bench.servers import AUTH_TOKEN, PUBLIC_URL, Server, manage, production_env
from ivr.machine import STEPS
from phone.call import SimulatedCall, scripted
from phone.transport import OverHttp
from tests.e2e.calls import Checked, place
from tests.e2e.conftest import RECIPIENT

pytestmark = pytest.mark.e2e


def test_a_call_alternating_between_two_servers_registers_signs_in_and_sends_money(two_servers, database_url):
    caller = "+12022000002"
    call, heard = place(two_servers, ["#", "1", "200002", "4682", "4682", "1", "2", "1"], caller=caller)
    assert "Your account is created" in heard
    assert "Your balance is 0 dollars" in heard
    codes = re.findall(r"(?:registration code is|Again): ((?:\d, ){5}\d)", heard)
    assert len(codes) == 4 and len(set(codes)) == 1, "the code, read twice, then repeated"

    # Pending: no money moves until staff verify the code.
    manage(production_env(database_url), "deposit", "202-200-0002", "100")
    call, heard = place(two_servers, ["4682", "2", "1"], caller=caller)
    assert "Your account is not verified yet" in heard
    assert "registration of Account 200002" in manage(
        production_env(database_url), "verify_code", codes[0].replace(", ", "")
    )

    # From a withheld number: the member ID, then the PIN.
    call, heard = place(two_servers, ["200002", "4682", "1"], caller="anonymous")
    assert "Please enter your 6-digit member ID" in heard
    assert "Your balance is 100 dollars" in heard

    call, heard = place(two_servers, ["4682", "2", "25", RECIPIENT, "1", "2", "1"], caller=caller)
    assert "You are sending 25 dollars to Jane Doe" in heard
    assert "is submitted" in heard
    assert "Your balance is 75 dollars" in heard
    assert call.ended_by == "caller"
    code = re.search(r"confirmation code is: ((?:\d, ){5}\d)", heard).group(1).replace(", ", "")
    assert "transfer" in manage(production_env(database_url), "verify_code", code)


def test_an_account_made_before_a_restart_signs_in_after_it(database_url):
    server = Server(production_env(database_url)).start()
    try:
        place([server], ["#", "1", "200003", "4682", "4682", "2"], caller="+12022000003")
    finally:
        server.stop()
    server = Server(production_env(database_url)).start()
    try:
        _call, heard = place([server], ["4682", "1"], caller="+12022000003")
    finally:
        server.stop()
    assert "Your balance is 0 dollars" in heard


def test_with_the_database_unreachable_callers_hear_a_calm_apology():
    server = Server(production_env("postgres://postgres@127.0.0.1:9/unreachable")).start()
    try:
        call, heard = place([server], ["3971"], failures_expected=True)
        assert "temporarily unavailable" in heard
        assert call.ended_by == "server"

        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(server.url + "/healthz", timeout=5)
        assert health.value.code == 503

        fallback = SimulatedCall(
            base_url=PUBLIC_URL, auth_token=AUTH_TOKEN, transport=Checked([server], failures_expected=True)
        )
        answer = fallback.post(PUBLIC_URL + "/twilio/fallback", fallback.params())
        assert "temporarily unavailable" in answer.body
        assert "<Hangup" in answer.body
    finally:
        server.stop()


def test_healthz_is_served_over_plain_http_with_production_settings(two_servers):
    with urllib.request.urlopen(two_servers[0].url + "/healthz", timeout=5) as response:
        assert response.status == 200


def hostile_bodies(call_sid: str) -> list[dict[str, str]]:
    base = {"CallSid": call_sid, "From": "+12022000999", "To": "+12025000000", "AccountSid": "AC" + "0" * 32}
    return [
        {**base, "Digits": "7" * 10_000},
        {**base, "Digits": "١٢٣٤"},
        {**base, "Digits": "１２３４５６"},
        {**base, "Digits": "\u0000\u202e;--"},
        {k: v for k, v in base.items() if k != "CallSid"},
        {k: v for k, v in base.items() if k != "From"},
        {**base, "From": "+1" + "5" * 4998},
        {**base, "CallSid": "CA" + "x" * 5000},
        {**base, "Digits": "1", "CallStatus": "completed"},
    ]


@pytest.mark.parametrize(
    "path",
    ["/twilio/voice", "/twilio/status", "/twilio/fallback"]
    + [f"/twilio/step/{name}?n={n}" for name in STEPS for n in (1, 999999)]
    + ["/twilio/step/entry?n=zz", "/twilio/step/entry?n=1&no_input=1"],
)
def test_hostile_requests_at_every_step_url_never_get_a_5xx(two_servers, path):
    server = OverHttp(two_servers[0].url)
    for body in hostile_bodies("CA" + "e" * 32):
        url = PUBLIC_URL + path
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, body)
        answer = server.post(url, body, {"X-Twilio-Signature": signature})
        assert answer.status == 200, (path, answer.status, answer.body[:300])
        if "/status" not in path:
            assert ET.fromstring(answer.body).tag == "Response"


@pytest.mark.parametrize("pound, number", [("a", 1), ("b", 2), ("c", 3), ("d", 4)])
def test_registration_and_other_options_work_under_every_lone_pound_behaviour(two_servers, pound, number):
    """Twilio's docs disagree on a lone "#": each way it may go, against production settings over HTTP."""
    caller = f"+120255501{number:02d}"
    member_id = f"4100{number:02d}"

    def call(keys: list[str], from_: str) -> tuple[SimulatedCall, str]:
        simulated = SimulatedCall(
            base_url=PUBLIC_URL, auth_token=AUTH_TOKEN, transport=Checked(two_servers), caller=from_, pound=pound
        )
        simulated.place(scripted(keys))
        return simulated, " ".join(event.text for event in simulated.transcript if event.kind == "say")

    _registered, heard = call(["#", "1", member_id, "4682", "4682", "2", "1"], caller)
    assert "Your account is created." in heard and "Your balance is 0 dollars." in heard
    # Other options from that new home number: sign in with the member ID instead of the PIN alone.
    other, heard = call(["#", "2", member_id, "4682", "1"], caller)
    assert "To enter a member ID, press 2." in heard and "Your balance is" in heard
    assert other.totals_before("To enter a member ID").wait_seconds == (8 if pound == "c" else 0)
