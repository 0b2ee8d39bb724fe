"""Stripe's API at the HTTP layer, for the real `stripe` library, as strict as Stripe (tests only).

Bodies are shaped as Stripe's API reference shows them. As Stripe does:
- an idempotency key replays its first answer, a 500 included, and refuses other parameters (400
  idempotency_error); a key whose first request is still running answers 409 idempotency_key_in_use;
- a PaymentMethod has a fingerprint per card number; a PaymentIntent is listed by when it was made;
- `lose_next(n, how)` makes the next n charge requests fail in transit ("timeout": the connection drops
  after Stripe made the charge; "refused": before it reached Stripe; "500": Stripe failed and saved it;
  "409": the key is in use; "401": the key was refused, as when it is revoked meanwhile), so that what
  Stripe did and what we heard differ, as on a real network.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import requests
import responses

API = "https://api.stripe.com"
# (payment method, card number, Stripe's code and decline_code for the charge; "" charges it).
CARDS = {
    "pm_card_visa": ("4242424242424242", "", ""),
    "pm_card_visa_debit": ("4000056655665556", "", ""),
    "pm_card_visa_chargeDeclined": ("4000000000000002", "card_declined", "generic_decline"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("4000000000009995", "card_declined", "insufficient_funds"),
    "pm_card_authenticationRequiredOnSetup": ("4000002500003155", "authentication_required", "authentication_required"),
    "pm_card_visa_chargeDeclinedExpiredCard": ("4000000000000069", "expired_card", ""),
}


@dataclass
class StripeDouble:
    intents: dict[str, dict] = field(default_factory=dict)
    refunds: dict[str, dict] = field(default_factory=dict)
    keys: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    charge_requests: list[dict] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    down: bool = False
    disputes: dict[str, dict] = field(default_factory=dict)
    warnings: dict[str, dict] = field(default_factory=dict)
    events: dict[str, dict] = field(default_factory=dict)
    # The status a refund we ask for is answered with ("pending" for one that settles later).
    refund_status: str = "succeeded"
    # When set, a refund request waits here until the test releases it (a slow Stripe); refund_waiting
    # is set once one is waiting.
    refund_gate: threading.Event | None = None
    refund_waiting: threading.Event = field(default_factory=threading.Event)
    # The next n refund requests are made, then their answer is lost (the connection drops).
    refunds_lost: int = 0
    # When set, the next refund request is refused with this invalid_request_error code (then cleared).
    refund_refusal: str = ""
    # List endpoints a restricted key may not read ("/v1/radar/early_fraud_warnings"): 403, as Stripe answers.
    not_permitted: set[str] = field(default_factory=set)
    numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def lose_next(self, count: int = 1, how: str = "timeout") -> None:
        self.lost += [how] * count

    def install(self, mocked: responses.RequestsMock) -> None:
        self.mocked = mocked  # its calls: what the library sent, with the timeout it waited
        mocked.add_callback(responses.GET, re.compile(rf"{API}/v1/payment_methods/.+"), self._payment_method)
        mocked.add_callback(responses.POST, f"{API}/v1/payment_intents", self._create_intent)
        mocked.add_callback(responses.GET, re.compile(rf"{API}/v1/payment_intents(\?.*)?$"), self._list_intents)
        mocked.add_callback(responses.POST, f"{API}/v1/refunds", self._create_refund)
        mocked.add_callback(responses.GET, re.compile(rf"{API}/v1/refunds(\?.*)?$"), self._list_refunds)
        mocked.add_callback(responses.GET, re.compile(rf"{API}/v1/disputes(\?.*)?$"), self._list_disputes)
        mocked.add_callback(responses.GET, re.compile(rf"{API}/v1/charges(\?.*)?$"), self._list_charges)
        mocked.add_callback(
            responses.GET, re.compile(rf"{API}/v1/radar/early_fraud_warnings(\?.*)?$"), self._list_warnings
        )
        mocked.add_callback(responses.GET, re.compile(rf"{API}/v1/events(\?.*)?$"), self._list_events)
        mocked.add_callback(responses.GET, re.compile(rf"{API}/v1/events/evt_[A-Za-z0-9_]+$"), self._event)

    # What happens in Stripe's dashboard and at the card's bank, after the call ------------------

    def charge_of(self, payment_intent: str) -> str:
        return self.intents[payment_intent]["latest_charge"]

    def refund_in_dashboard(self, payment_intent: str, amount: int, status: str = "succeeded") -> dict:
        """A refund an operator made in Stripe's dashboard: no metadata of ours."""
        refund = {
            "id": self._id("re_"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": self._id("txn_"),
            "charge": self.charge_of(payment_intent),
            "created": int(time.time()),
            "currency": "usd",
            "metadata": {},
            "payment_intent": payment_intent,
            "reason": "requested_by_customer",
            "status": status,
            "failure_reason": "lost_or_stolen_card" if status == "failed" else None,
        }
        self.refunds[refund["id"]] = refund
        return refund

    def charge_refunded(self, payment_intent: str, amount_refunded: int) -> dict:
        """The Charge a charge.refunded event carries (since 2022-11-15 without its refunds)."""
        amount = self.intents[payment_intent]["amount"]
        return {
            "id": self.charge_of(payment_intent),
            "object": "charge",
            "payment_intent": payment_intent,
            "amount": amount,
            "amount_refunded": amount_refunded,
            "refunded": amount_refunded >= amount,
        }

    def dispute(self, payment_intent: str, amount: int, status: str = "needs_response", moves=()) -> dict:
        """A dispute as Stripe's Dispute object shows it; moves are its balance transactions' amounts
        (-amount when Stripe withdrew the money, +amount when it reinstated it)."""
        found = next((d for d in self.disputes.values() if d["payment_intent"] == payment_intent), None)
        dispute = found or {
            "id": self._id("dp_"),
            "object": "dispute",
            "amount": amount,
            "charge": self.charge_of(payment_intent),
            "created": int(time.time()),
            "currency": "usd",
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": payment_intent,
            "reason": "fraudulent",
        }
        dispute["status"] = status
        dispute["balance_transactions"] = [
            {
                "id": self._id("txn_"),
                "object": "balance_transaction",
                "amount": move,
                "fee": 1500 if move < 0 else -1500,
                "reporting_category": "dispute" if move < 0 else "dispute_reversal",
                "type": "adjustment",
            }
            for move in moves
        ]
        self.disputes[dispute["id"]] = dispute
        return json.loads(json.dumps(dispute))

    def event(self, kind: str, obj: dict, *, created: int | None = None) -> dict:
        """Stripe's Event object around obj (https://docs.stripe.com/api/events/object), kept for listing."""
        event = {
            "id": self._id("evt_"),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": created or int(time.time()),
            "data": {"object": json.loads(json.dumps(obj))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        self.events[event["id"]] = event
        return event

    def _list_disputes(self, request) -> tuple[int, dict, str]:
        if self.down:
            self._unreachable()
        query = dict(parse_qsl(urlsplit(request.url).query))
        since = int(query.get("created[gte]", 0))
        data = [d for d in self.disputes.values() if d["created"] >= since]
        return self._answer(200, {"object": "list", "data": data, "has_more": False, "url": "/v1/disputes"})

    def fraud_warning(self, payment_intent: str) -> dict:
        """An early fraud warning as Radar's EarlyFraudWarning object shows it."""
        warning = {
            "id": self._id("issfr_"),
            "object": "radar.early_fraud_warning",
            "actionable": True,
            "charge": self.charge_of(payment_intent),
            "created": int(time.time()),
            "fraud_type": "made_with_stolen_card",
            "livemode": False,
            "payment_intent": payment_intent,
        }
        self.warnings[warning["id"]] = warning
        return warning

    def _list_charges(self, request) -> tuple[int, dict, str]:
        """The charges the PaymentIntents made (one each), newest first, shaped as Stripe's Charge objects."""
        if self.down:
            self._unreachable()
        query = dict(parse_qsl(urlsplit(request.url).query))
        since, until = int(query.get("created[gte]", 0)), int(query.get("created[lte]", 2**40))
        data = []
        for intent in reversed(self.intents.values()):
            if not since <= intent["created"] <= until:
                continue
            refunded = sum(
                r["amount"]
                for r in self.refunds.values()
                if r["payment_intent"] == intent["id"] and r["status"] != "failed"
            )
            data.append(
                {
                    "id": intent["latest_charge"],
                    "object": "charge",
                    "amount": intent["amount"],
                    "amount_refunded": refunded,
                    "created": intent["created"],
                    "description": intent["description"],
                    "disputed": any(d.get("payment_intent") == intent["id"] for d in self.disputes.values()),
                    "paid": intent["status"] == "succeeded",
                    "payment_intent": intent["id"],
                    "refunded": refunded >= intent["amount"],
                    "status": "succeeded" if intent["status"] == "succeeded" else "failed",
                    "payment_method_details": {"card": {"brand": "visa", "last4": "4242"}, "type": "card"},
                }
            )
        return self._answer(200, {"object": "list", "data": data, "has_more": False, "url": "/v1/charges"})

    def _list_warnings(self, request) -> tuple[int, dict, str]:
        if self.down:
            self._unreachable()
        if "/v1/radar/early_fraud_warnings" in self.not_permitted:
            return self._not_permitted("rak_radar_early_fraud_warning_read")
        since = int(dict(parse_qsl(urlsplit(request.url).query)).get("created[gte]", 0))
        data = [w for w in self.warnings.values() if w["created"] >= since]
        return self._answer(
            200, {"object": "list", "data": data, "has_more": False, "url": "/v1/radar/early_fraud_warnings"}
        )

    def _list_events(self, request) -> tuple[int, dict, str]:
        if self.down:
            self._unreachable()
        query = parse_qsl(urlsplit(request.url).query)
        since = int(dict(query).get("created[gte]", 0))
        types = {value for name, value in query if name.startswith("types[")}
        data = [e for e in self.events.values() if e["created"] >= since and (not types or e["type"] in types)]
        data.sort(key=lambda e: -e["created"])  # newest first, as Stripe lists them
        return self._answer(200, {"object": "list", "data": data, "has_more": False, "url": "/v1/events"})

    def _event(self, request) -> tuple[int, dict, str]:
        event_id = urlsplit(request.url).path.rsplit("/", 1)[1]
        if event_id not in self.events:
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": f"No such event: '{event_id}'",
            }
            return self._answer(404, {"error": error})
        return self._answer(200, self.events[event_id])

    # ------------------------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}3Q{next(self.numbers):022d}"

    def _answer(self, status: int, body: dict) -> tuple[int, dict, str]:
        return status, {"Request-Id": self._id("req_")}, json.dumps(body)

    def _not_permitted(self, permission: str) -> tuple[int, dict, str]:
        message = (
            "The provided key 'rk_test_***' does not have the required permissions for this endpoint on account "
            f"'acct_1Test'. Having the '{permission}' permission would allow this request to continue."
        )
        return self._answer(403, {"error": {"type": "invalid_request_error", "message": message}})

    def _unreachable(self) -> None:
        raise requests.exceptions.ConnectionError("Connection refused (test double: Stripe is down)")

    def _payment_method(self, request) -> tuple[int, dict, str]:
        if self.down:
            self._unreachable()
        pm = urlsplit(request.url).path.rsplit("/", 1)[1]
        if pm not in CARDS:
            return self._answer(
                404,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "resource_missing",
                        "message": f"No such PaymentMethod: '{pm}'",
                    }
                },
            )
        number = CARDS[pm][0]
        return self._answer(
            200,
            {
                "id": pm,
                "object": "payment_method",
                "type": "card",
                "livemode": False,
                "card": {
                    "brand": "visa",
                    "last4": number[-4:],
                    "fingerprint": f"fp{number[-8:]}",
                    "exp_month": 12,
                    "exp_year": 2034,
                    "funding": "credit",
                    "country": "US",
                },
            },
        )

    def _create_intent(self, request) -> tuple[int, dict, str]:
        if self.down:
            self._unreachable()
        form = dict(parse_qsl(request.body if isinstance(request.body, str) else request.body.decode()))
        self.charge_requests.append(form)
        key = request.headers.get("Idempotency-Key", "")
        how = self.lost.pop(0) if self.lost else ""
        if how == "refused":
            self._unreachable()
        if how == "401":
            error = {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****"}
            return self._answer(401, {"error": error})
        if how == "409":
            return self._answer(
                409,
                {
                    "error": {
                        "type": "idempotency_error",
                        "code": "idempotency_key_in_use",
                        "message": "There is currently another in-progress request using this Stripe-Idempotency-Key.",
                    }
                },
            )
        if key in self.keys:
            parameters, status, body = self.keys[key]
            if parameters != request.body:
                return self._idempotency_error()
            if how == "timeout":
                raise requests.exceptions.ReadTimeout("Read timed out (test double)")
            return status, {"Idempotent-Replayed": "true"}, body
        status, headers, body = self._charge(form)
        if how == "500":
            status, body = 500, json.dumps({"error": {"type": "api_error", "message": "An unknown error occurred"}})
        self.keys[key] = (request.body, status, body)
        if how == "timeout":
            # Stripe made the charge; the answer never came back.
            raise requests.exceptions.ReadTimeout("Read timed out (test double)")
        return status, headers, body

    def _idempotency_error(self) -> tuple[int, dict, str]:
        return self._answer(
            400,
            {
                "error": {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                }
            },
        )

    def _charge(self, form: dict[str, str]) -> tuple[int, dict, str]:
        pm = form.get("payment_method", "")
        intent_id = self._id("pi_")
        code, decline = CARDS.get(pm, ("", "resource_missing", ""))[1:]
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "currency": form["currency"],
            "created": int(time.time()),
            "description": form.get("description"),
            "livemode": False,
            "metadata": {name[9:-1]: value for name, value in form.items() if name.startswith("metadata[")},
            "payment_method": pm,
            "payment_method_types": ["card"],
            "confirmation_method": "automatic",
            "status": "succeeded" if not code else "requires_payment_method",
            # Confirming makes a charge, failed or not: "the ID of the failed charge" for card errors.
            "latest_charge": self._id("ch_"),
            "last_payment_error": None,
        }
        self.intents[intent_id] = intent
        if code:
            error = {
                "type": "card_error",
                "charge": intent["latest_charge"],
                "code": code,
                "decline_code": decline or None,
                "message": "Your card was declined.",
                "payment_intent": intent,
            }
            intent["last_payment_error"] = {k: v for k, v in error.items() if k != "payment_intent"}
            return self._answer(402, {"error": error})
        return self._answer(200, intent)

    def _list_intents(self, request) -> tuple[int, dict, str]:
        if self.down:
            self._unreachable()
        query = dict(parse_qsl(urlsplit(request.url).query))
        since, until = int(query.get("created[gte]", 0)), int(query.get("created[lte]", 2**40))
        data = [i for i in self.intents.values() if since <= i["created"] <= until]
        return self._answer(200, {"object": "list", "data": data, "has_more": False, "url": "/v1/payment_intents"})

    def _create_refund(self, request) -> tuple[int, dict, str]:
        if self.refund_gate is not None:
            self.refund_waiting.set()
            self.refund_gate.wait(timeout=30)
        if self.down:
            self._unreachable()
        form = dict(parse_qsl(request.body if isinstance(request.body, str) else request.body.decode()))
        key = request.headers.get("Idempotency-Key", "")
        if key in self.keys:
            parameters, status, body = self.keys[key]
            if parameters != request.body:
                # As Stripe: a key is bound to the parameters it was first used with.
                return self._idempotency_error()
            return status, {"Idempotent-Replayed": "true"}, body
        if self.refund_refusal:
            code, self.refund_refusal = self.refund_refusal, ""
            error = {"type": "invalid_request_error", "code": code, "message": "This charge cannot be refunded."}
            return self._answer(400, {"error": error})
        intent = self.intents.get(form.get("payment_intent", "")) or next(
            (i for i in self.intents.values() if form.get("charge") and i["latest_charge"] == form.get("charge")), None
        )
        if intent is not None:
            # As Stripe: never more than the charge, counting refunds made anywhere (its dashboard too).
            done = sum(
                r["amount"]
                for r in self.refunds.values()
                if r["payment_intent"] == intent["id"] and r["status"] not in ("failed", "canceled")
            )
            asked = int(form.get("amount") or intent["amount"] - done)
            if done >= intent["amount"] or done + asked > intent["amount"]:
                code = "charge_already_refunded" if done >= intent["amount"] else "amount_too_large"
                error = {"type": "invalid_request_error", "code": code, "message": "Charge has already been refunded."}
                return self._answer(400, {"error": error})
        refund = {
            "id": self._id("re_"),
            "object": "refund",
            "amount": int(form.get("amount", 0)),
            "charge": intent["latest_charge"] if intent else form.get("charge"),
            # As Stripe: a refund of a PaymentIntent's charge names the PaymentIntent, however it was asked.
            "payment_intent": intent["id"] if intent else form.get("payment_intent"),
            "created": int(time.time()),
            "currency": "usd",
            "status": self.refund_status,
            "metadata": {name[9:-1]: value for name, value in form.items() if name.startswith("metadata[")},
        }
        self.refunds[refund["id"]] = refund
        status, headers, body = self._answer(200, refund)
        self.keys[key] = (request.body, status, body)
        if self.refunds_lost:
            self.refunds_lost -= 1
            raise requests.exceptions.ReadTimeout("Read timed out (test double)")
        return status, headers, body

    def _list_refunds(self, request) -> tuple[int, dict, str]:
        if self.down:
            self._unreachable()
        if "/v1/refunds" in self.not_permitted:
            return self._not_permitted("rak_refund_read")
        query = dict(parse_qsl(urlsplit(request.url).query))
        target = query.get("payment_intent") or query.get("charge")
        since = int(query.get("created[gte]", 0))
        data = [
            r
            for r in reversed(self.refunds.values())  # newest first, as Stripe lists them
            if (target is None or target in (r["payment_intent"], r["charge"])) and r["created"] >= since
        ]
        return self._answer(200, {"object": "list", "data": data, "has_more": False, "url": "/v1/refunds"})
