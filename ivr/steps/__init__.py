"""Every prompt of the call (docs/CALL_FLOW.md): what it says, what it takes, where it leads.

One module per part of the call, one class per prompt, each holding its own
words; the shapes several prompts share (a menu of options, choosing and
confirming a PIN, reading a code back) are written once in common.py.
Counting silences and wrong keys, retries, stale URLs and the TwiML itself
are ivr/machine.py's work. Importing this package registers the steps.
"""

from ivr.steps import deposit_line, entry, menu, registration, send_money  # noqa: F401
