"""What happens to a call as a whole, outside its prompts (ivr/machine.py runs the prompts)."""

from __future__ import annotations

from ivr import caller_id
from ivr.models import CallSession


def call_forget(*, call_sid: str, from_: str | None, line: str | None = None) -> str:
    """Forget a call Twilio says is over; the outcome for the log and metrics.

    Only the call's own caller can end it: a signed callback naming another
    caller's From deletes nothing, nor one signed by the other line's token
    (line: ivr.decorators.signed_line). The caller is compared as the call
    stored it: a withheld From matches only a call whose caller was withheld too.
    """
    deposit_line = None if line is None else line == "deposit"
    if CallSession.forget(call_sid, caller=caller_id.caller_number(from_), deposit_line=deposit_line):
        return "forgotten"
    # Kept: why, for the log (a second query, only when nothing was deleted).
    call = CallSession.objects.filter(call_sid=call_sid).only("deposit_line").first()
    if call is None:
        return "unknown call"
    if deposit_line is not None and call.deposit_line != deposit_line:
        return "another line's call: kept"
    return "another caller: kept"
