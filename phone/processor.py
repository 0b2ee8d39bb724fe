"""The test processor: Stripe's API as its test mode answers our requests, inside this process (DEBUG only).

With DEBUG on and no STRIPE_SECRET_KEY, payments.stripe_api hands the real `stripe` library this HTTP
client instead of one that reaches api.stripe.com, so `make call ... --deposit` charges a card with no
account anywhere. It answers the requests the service makes, shaped as Stripe's API reference shows them:

- GET /v1/payment_methods/pm_...: the card, its brand, last four and a fingerprint per card number;
- POST /v1/payment_intents: as Stripe's test cards charge (phone.payment.TEST_CARDS: 4242... succeeds,
  ...0002 declined, ...9995 insufficient funds, ...3155 needs authentication, which error_on_requires_action
  turns into a card error, ...0259 succeeds and is disputed later); each idempotency key answers the same
  again, and refuses other parameters (idempotency_error), as Stripe does;
- GET /v1/payment_intents (the listing reconciliation reads), POST and GET /v1/refunds.

What it made lives in this process's memory: the simulator and an in-process call share it.

As Stripe does, it also sends events: each PaymentIntent it makes queues a payment_intent.succeeded
or payment_intent.payment_failed, signed with the local webhook secret (sent_events), which the
simulator posts to /stripe/events after the call. And it can answer as a bad day at Stripe would
(answer_as, the simulator's --then): "uncertain" makes each charge and then drops the connection before its answer (the
service cannot know the card was charged: the deposit is uncertain until the event arrives);
"stripe-fails" answers each charge 500, saved under its idempotency key as Stripe saves it, and makes
nothing (uncertain too, then closed as not charged when no PaymentIntent exists an hour later);
"dispute" disputes the charge afterwards, as Stripe's test card ...0259 always does; "refund-fails"
answers a refund pending, then sends refund.failed. Each refund also sends refund.created and
charge.refunded, as Stripe does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from urllib.parse import parse_qsl, urlsplit

from payments.stripe_api import API_VERSION, TEST_PROCESSOR_WEBHOOK_SECRET, ConnectionLost, HTTPClient
from phone import payment

_lock = threading.Lock()
_intents: dict[str, dict] = {}
_by_key: dict[str, tuple[str, int, str]] = {}  # idempotency key: (parameters, status, body)
_refunds: dict[str, dict] = {}
_outbox: list[dict] = []  # the events Stripe would send, oldest first
MODES = {
    "dispute": "Stripe charges the card, then the card's bank disputes it and Stripe withdraws the money",
    "refund-fails": "after the call an operator refunds the deposit; Stripe says pending, then failed",
    "uncertain": "Stripe charges the card, then the connection drops before its answer",
    "stripe-fails": "Stripe answers each charge 500 and makes nothing",
}
_mode = ""  # Stripe answers every request


def answer_as(mode: str) -> None:
    """How the processor answers charges from now on in this process (MODES; "" as usual)."""
    global _mode
    if mode and mode not in MODES:
        raise ValueError(f"not a mode of the test processor: {mode}")
    _mode = mode


def sent_events() -> list[tuple[bytes, str]]:
    """The events sent since last asked, each as (the JSON body, its Stripe-Signature header), oldest first."""
    with _lock:
        sending, _outbox[:] = list(_outbox), []
    signed = []
    for event in sending:
        payload = json.dumps(event).encode()
        stamp = int(time.time())
        digest = hmac.new(
            TEST_PROCESSOR_WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + payload, hashlib.sha256
        ).hexdigest()
        signed.append((payload, f"t={stamp},v1={digest}"))
    return signed


def _send(kind: str, obj: dict) -> None:
    """Queue an event as Stripe's Event object wraps one (https://docs.stripe.com/api/events/object)."""
    _outbox.append(
        {
            "id": _id("evt_", f"{kind}:{obj['id']}:{time.time_ns()}"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "livemode": False,
            "type": kind,
            "pending_webhooks": 1,
            "data": {"object": json.loads(json.dumps(obj))},
        }
    )


def _id(prefix: str, seed: str) -> str:
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:24]


def _error(status: int, **error: object) -> tuple[str, int, dict]:
    return json.dumps({"error": error}), status, {"Request-Id": _id("req_", str(time.time_ns()))}


def _ok(body: dict) -> tuple[str, int, dict]:
    return json.dumps(body), 200, {"Request-Id": _id("req_", str(time.time_ns()))}


class TestProcessor(HTTPClient):
    """A stripe.HTTPClient that answers as Stripe's test mode would, without a network."""

    name = "myibot-test-processor"

    def request(self, method: str, url: str, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        form = dict(parse_qsl(post_data or "")) if isinstance(post_data, str) else {}
        query = dict(parse_qsl(parts.query))
        key = (headers or {}).get("Idempotency-Key", "")
        path = parts.path
        with _lock:
            if method == "get" and path.startswith("/v1/payment_methods/"):
                return self._payment_method(path.rsplit("/", 1)[1])
            if method == "post" and path == "/v1/payment_intents":
                if _mode == "stripe-fails":
                    return self._idempotent(
                        key, post_data or "", lambda: _error(500, type="api_error", message="An unknown error occurred")
                    )
                answer = self._idempotent(key, post_data or "", lambda: self._charge(form))
                if _mode == "uncertain":
                    raise ConnectionLost("the test processor dropped the connection before its answer")
                return answer
            if method == "get" and path == "/v1/payment_intents":
                return self._list(_intents.values(), query, "/v1/payment_intents")
            if method == "post" and path == "/v1/refunds":
                return self._idempotent(key, post_data or "", lambda: self._refund(form))
            if method == "get" and path == "/v1/refunds":
                target = query.get("payment_intent") or query.get("charge")
                found = [r for r in _refunds.values() if target is None or target in (r["payment_intent"], r["charge"])]
                return self._list(found, query if target is None else {}, "/v1/refunds")
            if method == "get" and path in ("/v1/disputes", "/v1/radar/early_fraud_warnings", "/v1/events"):
                # What reconciliation and stripe_events read: this processor keeps disputes only as the
                # events it sends, so the lists are empty, as a quiet test-mode account's are.
                return self._list([], query, path)
        return _error(404, type="invalid_request_error", code="resource_missing", message=f"No such route {path}")

    def request_stream(self, *args, **kwargs):
        raise NotImplementedError("the test processor answers no streaming request")

    def close(self) -> None:
        pass

    def _payment_method(self, pm: str):
        card = payment.card_for_payment_method(pm)
        if card is None:
            return _error(
                404, type="invalid_request_error", code="resource_missing", message=f"No such PaymentMethod: '{pm}'"
            )
        return _ok(
            {
                "id": pm,
                "object": "payment_method",
                "type": "card",
                "livemode": False,
                "card": {
                    "brand": payment.card_type(card) or "visa",
                    "last4": card[-4:],
                    "fingerprint": _id("", "fingerprint:" + card)[:16],
                    "exp_month": 12,
                    "exp_year": 2034,
                    "funding": "credit",
                },
            }
        )

    def _idempotent(self, key: str, parameters: str, make):
        if key in _by_key:
            first, status, body = _by_key[key]
            if first != parameters:
                return _error(
                    400,
                    type="idempotency_error",
                    message="Keys for idempotent requests can only be used with the same parameters they were first used with.",
                )
            return body, status, {"Idempotent-Replayed": "true"}
        body, status, answer_headers = make()
        if key:
            _by_key[key] = (parameters, status, body)
        return body, status, answer_headers

    def _charge(self, form: dict[str, str]):
        pm = form.get("payment_method", "")
        card = payment.card_for_payment_method(pm)
        if card is None:
            return _error(
                400, type="invalid_request_error", code="resource_missing", message=f"No such PaymentMethod: '{pm}'"
            )
        intent_id = _id("pi_", f"{pm}:{time.time_ns()}")
        metadata = {name[9:-1]: value for name, value in form.items() if name.startswith("metadata[")}
        outcome = payment.TEST_CARDS[card]
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(form.get("amount", "0")),
            "currency": form.get("currency", "usd"),
            "created": int(time.time()),
            "description": form.get("description", ""),
            "livemode": False,
            "metadata": metadata,
            "payment_method": pm,
            "status": "succeeded" if outcome.code == "" else "requires_payment_method",
            "latest_charge": _id("ch_", intent_id),
            "last_payment_error": None,
        }
        _intents[intent_id] = intent
        if outcome.code:
            error = {"code": outcome.code, "decline_code": outcome.decline_code, "message": outcome.message}
            intent["last_payment_error"] = {**error, "type": "card_error"}
            _send("payment_intent.payment_failed", intent)
            return _error(402, type="card_error", payment_intent=intent, **error)
        _send("payment_intent.succeeded", intent)
        if card == payment.DISPUTED or _mode == "dispute":
            # As Stripe's test card 4000 0000 0000 0259 does: the charge succeeds, then is disputed as fraud.
            dispute = {
                "id": _id("dp_", intent_id),
                "object": "dispute",
                "amount": intent["amount"],
                "charge": intent["latest_charge"],
                "payment_intent": intent_id,
                "created": int(time.time()),
                "currency": intent["currency"],
                "livemode": False,
                "reason": "fraudulent",
                "status": "needs_response",
                "is_charge_refundable": False,
                "balance_transactions": [],
            }
            _send("charge.dispute.created", dispute)
            withdrawal = {
                "id": _id("txn_", intent_id),
                "object": "balance_transaction",
                "amount": -intent["amount"],
                "fee": 1500,
                "reporting_category": "dispute",
            }
            _send("charge.dispute.funds_withdrawn", {**dispute, "balance_transactions": [withdrawal]})
        return _ok(intent)

    def _list(self, items, query: dict[str, str], url: str):
        since = int(query.get("created[gte]", "0") or 0)
        until = int(query.get("created[lte]", str(2**40)) or 2**40)
        data = [item for item in items if since <= item.get("created", 0) <= until]
        return _ok(
            {
                "object": "list",
                "data": sorted(data, key=lambda item: -item.get("created", 0)),
                "has_more": False,
                "url": url,
            }
        )

    def _refund(self, form: dict[str, str]):
        target = form.get("payment_intent") or form.get("charge") or ""
        intent = _intents.get(target) or next((i for i in _intents.values() if i["latest_charge"] == target), None)
        if intent is None:
            return _error(
                400, type="invalid_request_error", code="resource_missing", message=f"No such charge: '{target}'"
            )
        refund_id = _id("re_", f"{target}:{time.time_ns()}")
        refund = {
            "id": refund_id,
            "object": "refund",
            "amount": int(form.get("amount") or intent["amount"]),
            "charge": intent["latest_charge"],
            "payment_intent": intent["id"],
            "created": int(time.time()),
            "currency": "usd",
            "metadata": {name[9:-1]: value for name, value in form.items() if name.startswith("metadata[")},
            "status": "pending" if _mode == "refund-fails" else "succeeded",
        }
        _refunds[refund_id] = refund
        _send("refund.created", refund)
        refunded = sum(r["amount"] for r in _refunds.values() if r["payment_intent"] == intent["id"])
        # As Stripe does for every refund, partial too; since 2022-11-15 the charge names no refunds.
        _send(
            "charge.refunded",
            {
                "id": intent["latest_charge"],
                "object": "charge",
                "amount": intent["amount"],
                "amount_refunded": refunded,
                "payment_intent": intent["id"],
                "refunded": refunded >= intent["amount"],
                "livemode": False,
            },
        )
        if _mode == "refund-fails":
            # A refund to a card that was closed meanwhile: pending at first, failed days later.
            _send("refund.failed", {**refund, "status": "failed", "failure_reason": "expired_or_canceled_card"})
        return _ok(refund)
