"""Placing calls over HTTP against real servers, with every answer checked as Twilio would need it."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from bench.servers import AUTH_TOKEN, PUBLIC_URL, Server
from phone.call import SimulatedCall, scripted
from phone.transport import Answer, OverHttp, Transport

FUNDED = "+12022000001"  # an account with money, PIN 3971


class Checked(Transport):
    """Spreads requests over servers in turn, and checks every answer as Twilio would need it."""

    def __init__(self, servers: list[Server], *, failures_expected: bool = False) -> None:
        self.transports = itertools.cycle([OverHttp(server.url) for server in servers])
        self.answers: list[Answer] = []
        self.failures_expected = failures_expected

    def post(self, signed_url: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        answer = next(self.transports).post(signed_url, params, headers)
        self.answers.append(answer)
        assert answer.status == 200, (answer.status, signed_url, answer.body[:500])
        if signed_url.endswith("/twilio/status"):
            return answer
        if not self.failures_expected:
            assert "temporarily unavailable" not in answer.body, f"the server failed inside at {signed_url}"
        verbs = [element.tag for element in ET.fromstring(answer.body)]
        assert verbs and verbs[-1] in ("Redirect", "Hangup"), answer.body
        for index, verb in enumerate(verbs):
            if verb == "Gather":
                assert index + 1 < len(verbs), f"a <Gather> with nothing after it: {answer.body}"
        return answer


def place(servers: list[Server], keys, caller: str = FUNDED, **checks: bool) -> tuple[SimulatedCall, str]:
    call = SimulatedCall(
        base_url=PUBLIC_URL, auth_token=AUTH_TOKEN, transport=Checked(servers, **checks), caller=caller
    )
    call.place(keys if callable(keys) else scripted(keys))
    return call, " ".join(event.text for event in call.transcript if event.kind == "say")
