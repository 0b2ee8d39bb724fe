"""What happens to a call as a whole, outside its prompts (ivr/machine.py runs the prompts)."""

from __future__ import annotations

from ivr import caller_id
from ivr.models import CallSession


def _same_caller(stored_caller: str, from_: str | None) -> bool:
    """Whether a status callback's From is the caller a call was stored for.

    Compared as the call stored it: a withheld From matches only a call whose
    caller was withheld too.
    """
    return caller_id.caller_number(from_) == stored_caller


def call_forget(*, call_sid: str, from_: str | None, line: str | None = None) -> str:
    """Forget a call Twilio says is over; the outcome for the log and metrics.

    Only the call's own caller can end it: a signed callback naming another
    caller's From deletes nothing, nor one signed by the other line's token
    (line: ivr.decorators.signed_line).
    """
    call = CallSession.objects.filter(call_sid=call_sid).only("caller", "deposit_line").first()
    if call is None:
        return "unknown call"
    if line is not None and call.deposit_line != (line == "deposit"):
        return "another line's call: kept"
    if not _same_caller(call.caller, from_):
        return "another caller: kept"
    call.delete()
    return "forgotten"
