"""Fixtures the prompt tests share."""

from __future__ import annotations

import pytest

from ivr.models import CallSession


@pytest.fixture
def at(phone, account, recipient):
    """Reach a prompt of tests/ivr/test_prompts.py's PROMPTS table: at("send_amount") is the phone there."""
    from tests.ivr.test_prompts import PROMPTS

    def reach(step_name: str):
        caller, keys, heard, _ = PROMPTS[step_name]
        if caller:
            phone.caller = caller
        phone.dial()
        for key in keys:
            phone.press(key)
        assert heard in phone.last.text, (step_name, phone.last.text)
        assert CallSession.objects.get(call_sid=phone.call_sid).step == step_name
        return phone

    return reach
