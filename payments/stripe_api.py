"""Everything we ask of Stripe, through its official library: the one module that imports `stripe`.

- A card's fingerprint (PaymentMethod.retrieve), before it is charged, for the per-card limits.
- One PaymentIntent per deposit, confirmed at once, under the deposit's one idempotency key.
- Reads that settle what a lost answer left open: PaymentIntents listed by when they were made.
- Refunds, with their own UUID in the metadata, and the refunds of a charge listed.
- Stripe's events, verified with STRIPE_WEBHOOK_SECRET.

Every request is bounded in time by its caller (a webhook has Twilio's 15 s in all)
and the library retries nothing by itself: the charge decides when one retry,
with the same key and parameters, still fits. STRIPE_API_BASE points the
library elsewhere (Stripe's stripe-mock, a test double). With DEBUG on and no
STRIPE_SECRET_KEY, a test processor the phone simulator registers answers
instead, as Stripe's test cards do (phone/processor.py): nothing leaves the machine.
Stripe's library is imported by the master before gunicorn forks (myibot/wsgi.py),
so its pages are shared by the workers, not copied into each.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache

from django.conf import settings

from payments.errors import StripeFailed, StripeNotConfigured


def _import_stripe_without_its_async_client():
    """Stripe's library imports an async HTTP client when one is installed, to have it ready. aiohttp is
    (twilio depends on it), and the service never calls Stripe asynchronously: importing it would cost
    every process 8 MB and 70 modules (docs/PERFORMANCE.md). It is hidden from this one import only;
    anything else may still import it."""
    hidden = [name for name in ("aiohttp", "httpx") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import name` now raises ImportError
    try:
        import stripe
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
    return stripe


stripe = _import_stripe_without_its_async_client()

logger = logging.getLogger(__name__)

# The API version the library is pinned to: the /stripe/events endpoint must be created with it (README).
API_VERSION = stripe.api_version
# What an operator's command or reconciliation may wait for one answer.
READ_SECONDS = 20
# What opening a connection to Stripe may take, within any budget (a TLS handshake to a healthy API: well
# under a second), and at most a third of the budget: the rest is for the answer.
CONNECT_SECONDS = 1.0
# What applying one of Stripe's events may wait for one answer (a charge.refunded lists the charge's
# refunds): well inside the time Stripe waits for /stripe/events to answer. A read that takes longer
# answers 500, and Stripe sends the event again (for up to 3 days); reconciliation lists them too.
EVENT_READ_SECONDS = 5
# The key the test processor answers to, and the secret its events are signed with (DEBUG only).
TEST_PROCESSOR_KEY = "sk_test_myibot_local_processor"
TEST_PROCESSOR_WEBHOOK_SECRET = "whsec_myibot_local_processor"  # noqa: S105 - DEBUG only, for the local test processor

# What a test processor is: the library's own HTTP client interface, so that it answers the real library.
HTTPClient = stripe.HTTPClient
# What a test processor raises when the connection drops: the library treats it as the network failing.
ConnectionLost = stripe.APIConnectionError

_test_processor: Callable[[], HTTPClient] | None = None


def register_test_processor(factory: Callable[[], HTTPClient]) -> None:
    """The phone simulator's stand-in for Stripe, used only with DEBUG on and no STRIPE_SECRET_KEY."""
    global _test_processor
    _test_processor = factory


def _using_test_processor() -> bool:
    return not settings.STRIPE_SECRET_KEY and settings.DEBUG and _test_processor is not None


def configured() -> bool:
    """Whether card deposits can be charged: a key, or (DEBUG) the simulator's test processor."""
    return bool(settings.STRIPE_SECRET_KEY) or _using_test_processor()


def livemode() -> bool:
    """The mode of the key: an event of the other mode is never believed."""
    return settings.STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))


def webhook_secret() -> str:
    if _using_test_processor():
        return TEST_PROCESSOR_WEBHOOK_SECRET
    return settings.STRIPE_WEBHOOK_SECRET


@lru_cache(maxsize=16)
def _client_for(key: str, base: str, timeout: float) -> stripe.StripeClient:
    # One client (and connection pool) per time budget: the budgets are few, and a new client per
    # request would pay a TLS handshake to Stripe every time.
    if key == TEST_PROCESSOR_KEY and _test_processor is not None:
        http_client = _test_processor()
    else:
        http_client = stripe.RequestsClient(timeout=connect_and_read(timeout))
    addresses = {"api": base} if base else None
    return stripe.StripeClient(key, max_network_retries=0, http_client=http_client, base_addresses=addresses)


def connect_and_read(budget: float) -> tuple[float, float]:
    """requests' (connect, read) timeouts for a budget: their sum is the budget.

    requests bounds the connect and each wait for the answer's bytes apart, not their sum: a budget given
    to both would let a slow handshake plus a slow answer take twice the budget, past the action request's
    deadline (payments.charges). So the connect's share comes off the read's. (An answer arriving in many
    slow pieces may still take longer; Stripe's are a few kilobytes, one or two reads.)
    """
    connect = min(CONNECT_SECONDS, budget / 3)
    return connect, budget - connect


def load_before_the_fork() -> None:
    """Load, in gunicorn's master, the parts of Stripe's library a charge, a refund and an event use, which
    it otherwise imports on first use in each worker (myibot/wsgi.py). No request is made."""
    if not configured():
        return
    client = _client(READ_SECONDS)
    for service in ("payment_methods", "payment_intents", "refunds", "charges", "disputes", "events"):
        getattr(client.v1, service)


def _client(timeout: float) -> stripe.StripeClient:
    if settings.STRIPE_SECRET_KEY:
        key = settings.STRIPE_SECRET_KEY
    elif _using_test_processor():
        key = TEST_PROCESSOR_KEY
    else:
        raise StripeNotConfigured
    # Whole tenths: a handful of clients, however the remaining time falls.
    return _client_for(key, settings.STRIPE_API_BASE, max(round(timeout, 1), 0.5))


def _error_body(error: stripe.StripeError) -> dict:
    body = error.json_body if isinstance(error.json_body, dict) else {}
    return body.get("error") or {}


# The card -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    fingerprint: str
    brand: str
    last4: str


def card_of(payment_method: str, *, timeout: float) -> Card:
    """The card behind <Pay>'s PaymentMethod. StripeFailed when Stripe refuses or does not answer in time."""
    try:
        found = _client(timeout).v1.payment_methods.retrieve(payment_method).to_dict()
    except stripe.StripeError as error:
        raise StripeFailed(_describe(error)) from None
    card = found.get("card") or {}
    return Card(fingerprint=card.get("fingerprint") or "", brand=card.get("brand") or "", last4=card.get("last4") or "")


# The charge ---------------------------------------------------------------------------------------


class Answer(Enum):
    SUCCEEDED = "succeeded"
    # Stripe answered and charged nothing: a card error (402), or a request it refused outright.
    CARD_ERROR = "card error"
    REFUSED = "refused"
    # No definite answer: a timeout, a dropped connection, a 5xx, 409 idempotency_key_in_use, or a
    # PaymentIntent in any status but succeeded. Only Stripe's later word settles it.
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class ChargeAnswer:
    answer: Answer
    payment_intent: str = ""
    status: str = ""
    # Stripe's code (card_declined, expired_card, authentication_required ...) and the bank's decline_code.
    code: str = ""
    decline_code: str = ""
    # A retry with the same key would get the same answer (or charge nothing more): worth one more try.
    retryable: bool = False
    why: str = ""


def charge(
    *,
    amount_cents: int,
    payment_method: str,
    description: str,
    metadata: dict[str, str],
    idempotency_key: str,
    timeout: float,
) -> ChargeAnswer:
    """One PaymentIntent, confirmed at once: what Stripe answered, never an exception.

    error_on_requires_action: a bank's demand for a check that a phone call cannot do (3-D Secure) is a
    card error (authentication_required) instead of a PaymentIntent left waiting for the caller.
    """
    params: dict = {
        "amount": amount_cents,
        "currency": "usd",
        "payment_method": payment_method,
        "payment_method_types": ["card"],
        "confirm": True,
        "error_on_requires_action": True,
        "description": description,
        "metadata": metadata,
    }
    if settings.STRIPE_MOTO:
        params["payment_method_options"] = {"card": {"moto": True}}
    try:
        intent = (
            _client(timeout)
            .v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})
            .to_dict()
        )
    except stripe.CardError as error:
        body = _error_body(error)
        intent_id = (
            (body.get("payment_intent") or {}).get("id", "") if isinstance(body.get("payment_intent"), dict) else ""
        )
        return ChargeAnswer(
            Answer.CARD_ERROR,
            payment_intent=intent_id,
            code=str(body.get("code") or error.code or ""),
            decline_code=str(body.get("decline_code") or ""),
            why=_describe(error),
        )
    except (stripe.APIConnectionError, stripe.APIError) as error:
        # Nothing definite: the request may or may not have reached Stripe, and Stripe may or may not have
        # charged (a 5xx is saved against the key and replayed; 409 says the first request is still running).
        return ChargeAnswer(Answer.UNCERTAIN, retryable=True, why=_describe(error))
    except stripe.IdempotencyError as error:
        # The key was used with other parameters: an earlier request with it exists, and may have charged.
        return ChargeAnswer(Answer.UNCERTAIN, why=_describe(error))
    except stripe.RateLimitError as error:
        # Not executed; one more try may get through.
        return ChargeAnswer(Answer.UNCERTAIN, retryable=True, why=_describe(error))
    except stripe.StripeError as error:
        # 400/401/403/404: Stripe refused the request itself (a used PaymentMethod, a bad key): nothing was charged.
        body = _error_body(error)
        return ChargeAnswer(Answer.REFUSED, code=str(body.get("code") or ""), why=_describe(error))
    status = intent.get("status") or ""
    answer = Answer.SUCCEEDED if status == "succeeded" else Answer.UNCERTAIN
    return ChargeAnswer(answer, payment_intent=intent.get("id") or "", status=status, why=f"PaymentIntent {status}")


def _describe(error: stripe.StripeError) -> str:
    """What went wrong, for a log line: the kind, the HTTP status and Stripe's code (no card data in any)."""
    body = _error_body(error)
    parts = [type(error).__name__, str(error.http_status or "-"), str(body.get("code") or "-")]
    if isinstance(error, stripe.PermissionError) and (needed := _PERMISSION.search(str(body.get("message") or ""))):
        # A restricted key without a permission: Stripe's message names it, the one thing an operator needs.
        parts.append(f"(the key needs {needed.group(1)})")
    return " ".join(parts)


# How Stripe names a restricted key's missing permission in a 403's message ("... Having the
# 'rak_radar_early_fraud_warning_read' permission would allow this request to continue.").
_PERMISSION = re.compile(r"'(rak_[a-z_]{1,80})'")


# Reads that settle what an answer left open ------------------------------------------------------


@dataclass(frozen=True)
class Intent:
    """What settling a deposit needs of a PaymentIntent (never a card number)."""

    id: str
    status: str
    amount_cents: int
    public_id: str
    deposit: str
    created: datetime
    livemode: bool
    latest_charge: str
    code: str = ""
    decline_code: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def failed(self) -> bool:
        # A confirmed PaymentIntent whose payment failed goes back to requires_payment_method; nobody
        # confirms it again (the PaymentMethod was for one charge), so it will never charge.
        return self.status in ("requires_payment_method", "canceled")


def intent_from(found: dict) -> Intent:
    metadata = found.get("metadata") or {}
    error = found.get("last_payment_error") or {}
    latest = found.get("latest_charge") or ""
    return Intent(
        id=found["id"],
        status=found.get("status") or "",
        amount_cents=int(found.get("amount") or 0),
        public_id=str(metadata.get("public_id") or ""),
        deposit=str(metadata.get("deposit") or ""),
        created=datetime.fromtimestamp(int(found.get("created") or 0), tz=UTC),
        livemode=bool(found.get("livemode")),
        latest_charge=latest if isinstance(latest, str) else latest.get("id", ""),
        code=str(error.get("code") or ""),
        decline_code=str(error.get("decline_code") or ""),
    )


def _listed(
    service: Callable[[stripe.StripeClient], object], params: dict, *, timeout: float = READ_SECONDS
) -> Iterator[dict]:
    """Every object a list endpoint gives (service picks it from the client), page by page, as dicts.
    Read-only. StripeFailed when Stripe cannot be read, whichever page it was on."""
    try:
        for found in service(_client(timeout)).list(params={**params, "limit": 100}).auto_paging_iter():
            yield found.to_dict()
    except stripe.StripeError as error:
        raise StripeFailed(_describe(error)) from None


def _created_since(since: datetime) -> dict:
    return {"created": {"gte": int(since.timestamp())}}


def intents_created(*, since: datetime, until: datetime) -> Iterator[Intent]:
    """Every PaymentIntent made between since and until, page by page. Read-only: never creates anything."""
    created = {"created": {"gte": int(since.timestamp()), "lte": int(until.timestamp())}}
    for found in _listed(lambda client: client.v1.payment_intents, created):
        yield intent_from(found)


@dataclass(frozen=True)
class Charge:
    """What reconciling version 3's connector charges needs of a Stripe charge (never a card number)."""

    id: str
    payment_intent: str
    description: str
    amount_cents: int
    paid: bool
    refunded: bool
    disputed: bool
    card_type: str
    card_last4: str
    created: datetime

    @property
    def references(self) -> set[str]:
        """The ids a version 3 <Pay> PaymentConfirmationCode may carry for this charge."""
        return {self.id, self.payment_intent} - {""}


def charges_created(*, since: datetime, until: datetime | None = None) -> Iterator[Charge]:
    """Every charge made since `since` (until `until`), page by page (version 3's connector charges are found
    by description)."""
    created = _created_since(since)
    if until is not None:
        created["created"]["lte"] = int(until.timestamp())
    for charge in _listed(lambda client: client.v1.charges, created):
        card = ((charge.get("payment_method_details") or {}).get("card")) or {}
        yield Charge(
            id=charge["id"],
            payment_intent=charge.get("payment_intent") or "",
            description=charge.get("description") or "",
            amount_cents=charge["amount"],
            paid=bool(charge.get("paid")) and charge.get("status") == "succeeded",
            refunded=bool(charge.get("refunded")) or bool(charge.get("amount_refunded")),
            disputed=bool(charge.get("disputed")),
            card_type=card.get("brand") or "",
            card_last4=card.get("last4") or "",
            created=datetime.fromtimestamp(charge["created"], tz=UTC),
        )


# Refunds ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundAnswer:
    """A Stripe refund: ours (public_id, from its metadata) or made in Stripe's dashboard (no public_id)."""

    id: str
    status: str
    amount_cents: int
    public_id: str
    failure_reason: str = ""
    charge: str = ""
    payment_intent: str = ""


def uuid_or_none(value: str) -> uuid.UUID | None:
    """A UUID of ours Stripe gives back from metadata (a deposit's public_id, a refund's), or None."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def id_of(value: object) -> str:
    """An expandable field: an id, or the object it was expanded to."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def refund_from(found: dict) -> RefundAnswer:
    return RefundAnswer(
        id=found["id"],
        status=found.get("status") or "",
        amount_cents=int(found.get("amount") or 0),
        public_id=str((found.get("metadata") or {}).get("refund") or ""),
        failure_reason=str(found.get("failure_reason") or ""),
        charge=id_of(found.get("charge")),
        payment_intent=id_of(found.get("payment_intent")),
    )


class RefundRefused(StripeFailed):
    """Stripe answered 4xx: it made no refund (already refunded, disputed, too old ...). code is Stripe's."""

    def __init__(self, why: str, code: str = "") -> None:
        super().__init__(why)
        self.code = code


def _target(reference: str) -> dict[str, str]:
    return {"payment_intent": reference} if reference.startswith("pi_") else {"charge": reference}


def refund_create(*, reference: str, amount_cents: int, public_id: str, deposit: int) -> RefundAnswer:
    """Refund amount_cents of a charge (ch_) or PaymentIntent (pi_), named by our refund's UUID.

    RefundRefused on a 4xx (Stripe made nothing); StripeFailed when the answer is lost (it may have).
    """
    params = {**_target(reference), "amount": amount_cents, "metadata": {"refund": public_id, "deposit": str(deposit)}}
    try:
        made = _client(READ_SECONDS).v1.refunds.create(
            params=params, options={"idempotency_key": f"myibot-refund-{public_id}"}
        )
    except (stripe.InvalidRequestError, stripe.CardError, stripe.PermissionError, stripe.AuthenticationError) as error:
        raise RefundRefused(_describe(error), str(_error_body(error).get("code") or "")) from None
    except stripe.StripeError as error:
        raise StripeFailed(_describe(error)) from None
    return refund_from(made.to_dict())


def refunds_created(*, since: datetime) -> Iterator[RefundAnswer]:
    """Every refund made since `since`, ours and those made in Stripe's dashboard, page by page."""
    for found in _listed(lambda client: client.v1.refunds, _created_since(since)):
        yield refund_from(found)


def refunds_of(reference: str, *, timeout: float = READ_SECONDS) -> list[RefundAnswer]:
    """Every refund of a charge or PaymentIntent, ours and those made in Stripe's dashboard."""
    return [
        refund_from(found) for found in _listed(lambda client: client.v1.refunds, _target(reference), timeout=timeout)
    ]


# Disputes and early fraud warnings ---------------------------------------------------------------


@dataclass(frozen=True)
class DisputeSeen:
    """A Stripe dispute: how much, where it stands, and whether Stripe took or gave back the money."""

    id: str
    charge: str
    payment_intent: str
    amount_cents: int
    status: str
    reason: str
    withdrawn: bool
    reinstated: bool
    created: datetime
    # What Stripe gave back, when its balance transactions say (0 when they do not): a reinstatement may
    # be less than the withdrawal ("This includes partially refunded payments", Stripe's event types).
    reinstated_cents: int = 0


def dispute_from(found: dict) -> DisputeSeen:
    # Each movement of the money is one of the dispute's balance transactions: negative when Stripe took
    # it from the balance, positive when it gave it back (the fee is in `fee`, never in the amount).
    moves = [move for move in found.get("balance_transactions") or [] if isinstance(move, dict)]
    return DisputeSeen(
        id=found["id"],
        charge=id_of(found.get("charge")),
        payment_intent=id_of(found.get("payment_intent")),
        amount_cents=int(found.get("amount") or 0),
        status=str(found.get("status") or ""),
        reason=str(found.get("reason") or ""),
        withdrawn=any(int(move.get("amount") or 0) < 0 for move in moves),
        reinstated=any(int(move.get("amount") or 0) > 0 for move in moves),
        created=datetime.fromtimestamp(int(found.get("created") or 0), tz=UTC),
        reinstated_cents=sum(max(int(move.get("amount") or 0), 0) for move in moves),
    )


def disputes_created(*, since: datetime) -> Iterator[DisputeSeen]:
    """Every dispute opened since `since` (they come up to 120 days after the charge), page by page."""
    for found in _listed(lambda client: client.v1.disputes, _created_since(since)):
        yield dispute_from(found)


@dataclass(frozen=True)
class FraudWarning:
    id: str
    charge: str
    payment_intent: str
    fraud_type: str


def fraud_warning_from(found: dict) -> FraudWarning:
    return FraudWarning(
        id=str(found.get("id") or ""),
        charge=id_of(found.get("charge")),
        payment_intent=id_of(found.get("payment_intent")),
        fraud_type=str(found.get("fraud_type") or ""),
    )


def fraud_warnings_created(*, since: datetime) -> Iterator[FraudWarning]:
    """Every early fraud warning since `since` (Radar), page by page."""
    for found in _listed(lambda client: client.v1.radar.early_fraud_warnings, _created_since(since)):
        yield fraud_warning_from(found)


# Events -------------------------------------------------------------------------------------------


def events_since(*, since: datetime, types: list[str]) -> Iterator[dict]:
    """Stripe's events of these types since `since` (it keeps 30 days of them), oldest first."""
    found = list(_listed(lambda client: client.v1.events, {**_created_since(since), "types": types}))
    return iter(sorted(found, key=lambda event: (int(event.get("created") or 0), str(event.get("id")))))


def event_retrieve(event_id: str) -> dict:
    """One event, read from Stripe with our key: believed as a signed one is."""
    try:
        return _client(READ_SECONDS).v1.events.retrieve(event_id).to_dict()
    except stripe.StripeError as error:
        raise StripeFailed(_describe(error)) from None


class BadSignature(Exception):
    pass


def event_from(payload: bytes, signature: str) -> dict:
    """The event, if STRIPE_WEBHOOK_SECRET signed it within 5 minutes; BadSignature otherwise."""
    secret = webhook_secret()
    if not secret:
        raise BadSignature("no STRIPE_WEBHOOK_SECRET")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=300)
    except (ValueError, stripe.SignatureVerificationError) as error:
        raise BadSignature(type(error).__name__) from None
    return event.to_dict()
