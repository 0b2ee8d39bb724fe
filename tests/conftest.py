"""Fixtures shared by every test: a phone that signs its requests as Twilio does."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import polib
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import resolve
from django.utils import timezone
from twilio.request_validator import RequestValidator

from accounts import pins
from accounts.ledger import deposit
from accounts.models import Account, Recipient
from myibot.languages import Language


def postgres_only(because: str) -> pytest.MarkDecorator:
    """Skipped on SQLite, saying what the test needs of PostgreSQL (each its own reason, the true one)."""
    return pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason=f"needs PostgreSQL: {because} (run with DATABASE_URL=postgres://...)",
    )


_call_numbers = itertools.count(1)


@pytest.fixture(autouse=True, scope="session")
def _compiled_catalogues() -> None:
    """Tests hear the catalogue as it is in locale/*.po, even when run without make."""
    from ivr import catalogue

    # Before any test translates: Django reads a catalogue once, on first use.
    if catalogue.stale_compiled():
        catalogue.compile_all()


# A third language, registered by the french fixture as docs/CALL_FLOW.md's "Adding a language" says.
FRENCH = Language(
    code="fr",
    name="Français",
    voice="Polly.Lea",
    locale="fr-FR",
    offer="Pour le français, appuyez sur %(key)s.",
    press=("appuyez sur", "appuyez sur la touche", "tapez"),
    key_names={"dièse": "#", "étoile": "*"},
    pay_locale="fr-FR",
)
FIXTURE_CATALOGUES = Path(__file__).parent / "fixtures" / "locale"


@pytest.fixture
def french(settings, tmp_path) -> Language:
    """French, offered third: its record in the registry, and its catalogue (tests/fixtures/locale/fr) compiled."""
    compiled = tmp_path / "fr" / "LC_MESSAGES" / "django.mo"
    compiled.parent.mkdir(parents=True)
    polib.pofile(str(FIXTURE_CATALOGUES / "fr" / "LC_MESSAGES" / "django.po")).save_as_mofile(str(compiled))
    settings.LOCALE_PATHS = [tmp_path, *settings.LOCALE_PATHS]
    settings.CALLER_LANGUAGES = {**settings.CALLER_LANGUAGES, FRENCH.code: FRENCH}
    settings.LANGUAGES = [*settings.LANGUAGES, (FRENCH.code, FRENCH.name)]
    settings.IVR_LANGUAGES = [*settings.IVR_LANGUAGES, FRENCH.code]
    return FRENCH


def xml_tree(document: str) -> tuple:
    """An XML document as nested (tag, attributes, text, tail, children): equal for equivalent documents."""

    def node(element: ET.Element) -> tuple:
        return (
            element.tag,
            sorted(element.attrib.items()),
            element.text,
            element.tail,
            [node(child) for child in element],
        )

    return node(ET.fromstring(document.encode()))


@pytest.fixture(autouse=True)
def _twiml_written_as_twilio_writes_it(monkeypatch) -> None:
    """Every TwiML answer any test causes is checked against twilio's own serializer (ivr.twiml.to_xml)."""
    from ivr import twiml

    ours = twiml.to_xml

    def checked(response):
        written = ours(response)
        assert xml_tree(written) == xml_tree(str(response)), written
        return written

    monkeypatch.setattr(twiml, "to_xml", checked)


def second_connection():
    """Another connection to the test database (PostgreSQL), in autocommit: to look at or lock what Django's does."""
    import psycopg

    params = connection.get_connection_params()
    return psycopg.connect(
        **{k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")}, autocommit=True
    )


def spoken_code(text: str) -> str:
    """The 6-digit confirmation code in what the caller heard, as digits."""
    match = re.search(r"(?:confirmation|registration) code is: ((?:\d, ){5}\d)", text)
    assert match, text
    return match.group(1).replace(", ", "")


def sent(response) -> None:
    """What the WSGI server does once a response's body is sent: response.close(), which runs what the webhook
    left for after its answer. As Django's test client does, without closing the test's database connection."""
    from django.core.signals import request_finished
    from django.db import close_old_connections

    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def sign(url: str, params: dict[str, str]) -> str:
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(url, params)


@dataclass
class Twiml:
    """A parsed TwiML answer, with the questions tests ask of it."""

    root: ET.Element
    raw: str

    @property
    def verbs(self) -> list[str]:
        return [child.tag for child in self.root]

    @property
    def text(self) -> str:
        """Everything the caller hears, as one string (SSML breaks are silent)."""
        return " ".join("".join(say.itertext()).strip() for say in self.root.iter("Say"))

    @property
    def gather(self) -> ET.Element | None:
        return self.root.find("Gather")

    @property
    def redirect(self) -> str | None:
        element = self.root.find("Redirect")
        return element.text if element is not None else None

    @property
    def hangs_up(self) -> bool:
        return self.verbs[-1:] == ["Hangup"]


@dataclass
class Phone:
    """One call, as Twilio would place it: signed webhooks that follow the TwiML."""

    client: Client
    caller: str = "+12026230001"
    call_sid: str = field(default_factory=lambda: f"CA{next(_call_numbers):032d}")
    # How Twilio treats a lone finishOnKey (its docs disagree, docs/TWILIO.md): (a) posts Digits=""
    # with FinishedOnKey="#", (b) posts Digits="" alone, (c) ignores it until the timeout, (d) posts
    # nothing and runs the next verb. Only (a) ever sends FinishedOnKey.
    pound: str = "b"
    # SHAKEN/STIR as a mobile call carries it: the carrier vouches for the number. None sends none.
    stir: str | None = "TN-Validation-Passed-A"
    last: Twiml | None = None
    responses: list = field(default_factory=list)

    def post(self, url: str, params: dict[str, str] | None = None, *, signed: bool = True, extra: dict | None = None):
        """POST to a full URL (BASE_URL + path) as Twilio does; returns the HTTP response."""
        path, body, headers = self._request(url, params, signed=signed, extra=extra)
        response = self.client.post(path, body, secure=True, **headers)
        self.responses.append(response)
        return response

    def unsent(self, keys: str | None = None, *, url: str | None = None):
        """The answer to the last prompt with keys (or to a POST to url), as its view returns it: before the
        server sends it, so what the webhook left for after its answer (myibot.after_answer) has not run
        until sent(response)."""
        if url is None:
            url, params = self.last.gather.get("action"), {"Digits": keys}
        else:
            params = {}
        path, body, headers = self._request(url, params)
        request = RequestFactory().post(path, body, secure=True, **headers)
        match = resolve(request.path)
        return match.func(request, *match.args, **match.kwargs)

    def _request(
        self, url: str, params: dict[str, str] | None, *, signed: bool = True, extra: dict | None = None
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        if url.startswith("/"):
            url = settings.BASE_URL + url
        body = {
            "CallSid": self.call_sid,
            "From": self.caller,
            "To": "+12025000000",
            "AccountSid": "AC" + "0" * 32,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            "StirVerstat": self.stir,
        }
        body.update(params or {})
        body = {k: v for k, v in body.items() if v is not None}
        headers = dict(extra or {})
        if signed:
            headers["HTTP_X_TWILIO_SIGNATURE"] = sign(url, body)
        parts = urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else ""), body, headers

    def twiml(self, response) -> Twiml:
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/xml")
        raw = response.content.decode()
        parsed = Twiml(ET.fromstring(raw), raw)
        assert parsed.root.tag == "Response"
        _assert_no_dead_air(parsed)
        self.last = parsed
        return parsed

    def dial(self, language: str | None = "en") -> Twiml:
        """Call in; a language prompt (for a caller not known by number) is answered with language's key.

        language=None leaves the language prompt to the test.
        """
        answer = self.twiml(self.post("/twilio/voice"))
        if language and answer.gather is not None and "/step/language?" in answer.gather.get("action"):
            answer = self.press(str(settings.IVR_LANGUAGES.index(language) + 1))
        return answer

    def dial_deposit_line(self, language: str | None = "en") -> Twiml:
        """Call the deposit line; its language prompt is answered with language's key (None leaves it)."""
        answer = self.twiml(self.post("/twilio/deposit"))
        if language and answer.gather is not None and "/step/deposit_language?" in answer.gather.get("action"):
            answer = self.press(str(settings.IVR_LANGUAGES.index(language) + 1))
        return answer

    @property
    def pay_verb(self) -> ET.Element | None:
        return self.last.root.find("Pay")

    def pay(self, result: str = "success", **fields: str) -> Twiml:
        """What Twilio posts to <Pay>'s action when the payment ends: Result, and for a success the token.

        <Pay tokenType="payment-method"> with no chargeAmount only tokenizes: a success carries the Stripe
        PaymentMethod as PaymentToken (Twilio's changelog, 2024-04-09), the card type and the masked number
        unless fields say otherwise (pass a field as None to leave it out, as Twilio sometimes does).
        """
        verb = self.pay_verb
        assert verb is not None, f"no <Pay> in {self.last.raw}"
        posted = {"Result": result}
        if result == "success":
            posted |= {
                "PaymentToken": "pm_card_visa",
                "PaymentCardType": "visa",
                "PaymentCardNumber": "xxxxxxxxxxxx4242",
                "ExpirationDate": "1230",
                "ProfileId": "",
            }
        posted |= fields
        return self.twiml(self.post(verb.get("action"), {k: v for k, v in posted.items() if v is not None}))

    def press(self, keys: str) -> Twiml:
        """Answer the last <Gather> with keys, as Twilio posts them to its action.

        As Twilio does: a finishOnKey ends the entry and is left out of Digits;
        pressed alone it is delivered as self.pound says.
        """
        gather = self.last.gather
        assert gather is not None, f"no prompt to answer in {self.last.raw}"
        finish = gather.get("finishOnKey", "#")
        finished = ""
        if finish and finish in keys:
            keys, finished = keys[: keys.index(finish)], finish
        if not keys and not finished:
            return self.silence()
        if not keys:
            if self.pound == "c":
                return self.silence()
            if self.pound == "d":
                return self.redirect()
        return self.twiml(self.post(gather.get("action"), {"Digits": keys, **self._finished_on_key(finished)}))

    def to_registration(self) -> Twiml:
        """From an entry prompt: "#" alone, then the choice's "create a new account"."""
        choice = self.press("#")
        key = "3" if "To create a new account, press 3" in choice.text else "1"
        answer = self.press(key)
        assert "To create an account, enter your 6-digit member ID" in answer.text, answer.text
        return answer

    def silence(self) -> Twiml:
        """Say nothing: with actionOnEmptyResult, Twilio posts an empty entry to the action at the timeout."""
        gather = self.last.gather
        assert gather is not None and gather.get("actionOnEmptyResult") == "true", self.last.raw
        return self.twiml(self.post(gather.get("action"), {"Digits": "", **self._finished_on_key("")}))

    def _finished_on_key(self, key: str) -> dict[str, str]:
        return {"FinishedOnKey": key} if self.pound == "a" else {}

    def redirect(self) -> Twiml:
        """Follow the <Redirect> after the <Gather>, as a client without actionOnEmptyResult would."""
        assert self.last.redirect, f"no redirect in {self.last.raw}"
        return self.twiml(self.post(self.last.redirect))

    def hang_up(self, status: str = "completed"):
        return self.post("/twilio/status", {"CallStatus": status})


def _assert_no_dead_air(parsed: Twiml) -> None:
    """Every <Gather> is followed by another verb, and every answer ends in a prompt or a goodbye."""
    verbs = parsed.verbs
    assert verbs, "empty TwiML is dead air"
    for index, verb in enumerate(verbs):
        if verb == "Dial":
            # Twilio goes on with what the verb's action answers: nothing after it runs.
            assert parsed.root[index].get("action") and index == len(verbs) - 1, verbs
            return
        if verb == "Pay":
            # Twilio runs the next verb when <Pay> ends without calling its action: a line and a <Redirect>.
            assert parsed.root[index].get("action") and verbs[index + 1 :] == ["Say", "Redirect"], verbs
            return
        if verb == "Gather":
            assert index + 1 < len(verbs), "a <Gather> must be followed by another verb"
            gather = parsed.root[index]
            assert gather.get("input") == "dtmf"
            assert int(gather.get("timeout")) >= 6
            assert gather.get("numDigits") or gather.get("finishOnKey")
            assert gather.get("actionOnEmptyResult") == "true", "an empty entry must reach us at once"
            # Notices and pauses inside the <Gather>: before it, only a code read whole.
            for before in verbs[:index]:
                assert before in ("Say", "Pause"), verbs
    assert verbs[-1] in ("Redirect", "Hangup"), verbs


@pytest.fixture
def stripe_double(settings):
    """Stripe's API for the real `stripe` library, answered at the HTTP layer (tests/stripe_double.py)."""
    import responses

    from tests.stripe_double import StripeDouble

    settings.STRIPE_SECRET_KEY = "sk_test_myibot"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_myibot"
    double = StripeDouble()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        double.install(mocked)
        yield double


@pytest.fixture
def phone(client: Client) -> Phone:
    return Phone(client)


@pytest.fixture
def make_phone(client: Client):
    def make(caller: str = "+12026230001") -> Phone:
        return Phone(client, caller=caller)

    return make


@pytest.fixture
def account(db) -> Account:
    """A verified caller, member ID 123456, home number +12026230001, PIN 3971, with 100 dollars."""
    created = Account.objects.create(
        home_number="+12026230001",
        member_id="123456",
        pin_hash=pins.hash_pin("3971"),
        status=Account.Status.ACTIVE,
        verified_at=timezone.now(),
    )
    deposit(account=created, amount_cents=100_00)
    created.refresh_from_db()
    return created


@pytest.fixture
def recipient(db) -> Recipient:
    return Recipient.objects.create(code="246810", name="Jane Doe")


@pytest.fixture
def signed_in(phone: Phone, account: Account) -> Phone:
    phone.dial()
    answer = phone.press("3971")
    assert "Main menu" in answer.text
    return phone


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Before the test database is made: on PostgreSQL, say plainly when another run is using it.

    Two runs against one server share the test database's name (test_<DATABASE_URL's name>); the second
    would try to drop it under the first and fail after the statement timeout, saying nothing of why.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if "postgresql" not in database["ENGINE"]:
        return
    name = (database.get("TEST") or {}).get("NAME") or f"test_{database['NAME']}"
    server = settings.DATABASES.get("direct", database)
    try:
        with psycopg.connect(
            host=server["HOST"],
            port=server["PORT"] or 5432,
            user=server["USER"],
            password=server["PASSWORD"] or None,
            dbname="postgres",
            connect_timeout=5,
        ) as admin:
            users = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [name]
            ).fetchone()[0]
    except psycopg.Error:
        return  # the server will say what is wrong when the database is made
    if users:
        pytest.exit(
            f"another test run (or {users} session(s)) is using the test database {name!r} on this server: "
            f"wait for it to end, or run with a database of your own (README: DATABASE_URL=.../myibot_$ME)",
            returncode=3,
        )
