"""A phone that behaves like Twilio, for `manage.py call`, the end-to-end tests and the benchmark.

Test and bench tooling, never on the request path: the product (myibot,
accounts, payments, ivr) does not import it, and the image leaves it out. Read it one
piece at a time:

- phone.transport: how a request reaches the server (in process, or over HTTP).
- phone.twiml: TwiML read as Twilio documents it, strictly.
- phone.clock: the virtual clock, and the totals a call's summary prints.
- phone.payment: what <Pay> and the Stripe connector do with a card, and what
  Twilio posts after it (the unsettled shapes as variants).
- phone.call: SimulatedCall, the call itself: Twilio's parameters and
  signatures, the lone-# behaviours, StirVerstat, the caller's keys.
- phone.management.commands.call: `manage.py call`, a call from the terminal.
"""
