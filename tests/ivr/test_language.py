"""English and Spanish (docs/CALL_FLOW.md), and no dead air after a key (No dead air, Every prompt)."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from accounts.ledger import deposit
from accounts.models import Account, Transfer
from accounts.spoken import spoken_amount, spoken_dollars
from ivr.models import CallSession
from phone.call import SimulatedCall, scripted
from phone.transport import InProcess

pytestmark = pytest.mark.django_db

SPANISH = {"voice": "Polly.Lupe", "language": "es-US"}
ENGLISH = {"voice": "Polly.Joanna", "language": "en-US"}


def voices(answer) -> list[dict[str, str]]:
    return [{"voice": say.get("voice"), "language": say.get("language")} for say in answer.root.iter("Say")]


def spanish_only(answer) -> None:
    """Every <Say> in Spanish with the Spanish voice, but the offer of English itself."""
    for say in answer.root.iter("Say"):
        text = "".join(say.itertext())
        if text.startswith("For English"):
            assert {"voice": say.get("voice"), "language": say.get("language")} == ENGLISH
        else:
            assert {"voice": say.get("voice"), "language": say.get("language")} == SPANISH, text


def test_an_unknown_caller_hears_each_language_offered_in_its_own_voice(phone):
    answer = phone.dial(language=None)
    says = list(answer.gather.iter("Say"))
    assert [("".join(s.itertext()), s.get("voice"), s.get("language")) for s in says] == [
        ("Welcome to MyiBot.", "Polly.Joanna", "en-US"),
        ("For English, press 1.", "Polly.Joanna", "en-US"),
        ("Para español, oprima 2.", "Polly.Lupe", "es-US"),
    ]
    assert answer.gather.get("numDigits") == "1"


def test_silence_at_the_language_prompt_offers_it_once_more_then_continues_in_the_first_language(phone):
    phone.dial(language=None)
    again = phone.silence()
    assert "For English, press 1." in again.text and "Para español, oprima 2." in again.text
    answer = phone.silence()
    assert "Please enter your 6-digit member ID" in answer.text
    assert "did not press" not in answer.text
    call = CallSession.objects.get()
    assert (call.language, call.timeouts) == ("en", 0), "the member-ID prompt starts with no silence counted"


@pytest.mark.parametrize("prompt", ["member_id", "pin", "new_or_member_id"])
@pytest.mark.parametrize("keys", ["9", "9#"])
def test_9_before_sign_in_switches_language_for_a_caller_who_missed_the_menu(phone, account, prompt, keys):
    phone.caller = "+12025009999"
    phone.dial(language=None)
    phone.silence()
    phone.silence()  # missed the language menu twice: English
    if prompt == "pin":
        phone.press(account.member_id)
    elif prompt == "new_or_member_id":
        phone.press("#")
    before = CallSession.objects.get().step
    answer = phone.press(keys)
    spanish_only(answer)
    assert CallSession.objects.get().step == before and CallSession.objects.get().language == "es"
    if prompt == "pin":
        assert "Por favor, marque su pin de 4 dígitos." in answer.text
        assert "Main menu" not in phone.press("3971").text
        account.refresh_from_db()
        assert account.language == "es"


def test_the_re_prompt_after_a_silence_or_a_wrong_entry_offers_the_other_language(phone, account):
    phone.caller = "+12025009999"
    phone.dial(language="en")
    assert "Para español" not in phone.last.text
    wrong = phone.press("12")
    assert "Para español, oprima 9." in wrong.text
    said = [say for say in wrong.root.iter("Say") if "".join(say.itertext()) == "Para español, oprima 9."]
    assert {"voice": said[0].get("voice"), "language": said[0].get("language")} == SPANISH
    phone.press(account.member_id)
    assert "Para español" in phone.silence().text


def test_with_three_languages_9_plays_the_language_menu(phone, french):
    phone.caller = "+12025009999"
    phone.dial(language="en")
    answer = phone.press("9")
    assert "For English, press 1." in answer.text and "appuyez sur 3." in answer.text
    assert CallSession.objects.get().step == "language"


def test_a_third_language_registered_with_its_catalogue_is_offered_heard_and_kept(make_phone, account, french):
    """docs/CALL_FLOW.md, "Adding a language": a record, a catalogue, and its code in IVR_LANGUAGES; no migration."""
    in_french = {"voice": "Polly.Lea", "language": "fr-FR"}
    phone = make_phone("+12025009999")
    offers = phone.dial(language=None)
    assert [("".join(say.itertext()), say.get("voice")) for say in offers.gather.iter("Say")][1:] == [
        ("For English, press 1.", "Polly.Joanna"),
        ("Para español, oprima 2.", "Polly.Lupe"),
        ("Pour le français, appuyez sur 3.", "Polly.Lea"),
    ]
    member_id = phone.press("3")
    assert member_id.text == (
        "Veuillez composer votre numéro de membre à 6 chiffres. Pour créer un compte, appuyez sur la touche dièse."
    )
    assert voices(member_id) == [in_french, in_french]
    phone.press(account.member_id)
    menu = phone.press("3971")
    assert "Vous êtes connecté. Menu principal. Pour votre solde, appuyez sur 1." in menu.text
    assert "oprima 9" not in menu.text, "three languages: 9 is the language menu, before sign-in only"
    assert all(voice == in_french for voice in voices(menu))
    account.refresh_from_db()
    assert account.language == "fr", "kept: the database checks the code's shape, not a list of codes"
    account.full_clean()

    # The next call from the home number is in French from the first word; a wrong key hears the table's keys.
    phone = make_phone(account.home_number)
    assert "Bienvenue chez MyiBot. Veuillez composer votre code PIN à 4 chiffres." in phone.dial(language=None).text
    phone.press("3971")
    phone.press("1")
    assert "Veuillez appuyer sur 1 ou 2." in phone.press("7").text


def test_a_wrong_key_at_the_language_prompt_asks_again(phone):
    phone.dial(language=None)
    answer = phone.press("7")
    assert "Para español, oprima 2." in answer.text
    assert CallSession.objects.get().invalid_entries == 1


def test_a_whole_call_in_spanish_registration_sign_in_balance_send_money_and_code(make_phone, recipient):
    phone = make_phone("+12027770000")
    phone.dial(language="es")
    spanish_only(phone.last)
    assert "Por favor, marque su número de miembro de 6 dígitos." in phone.last.text
    spanish_only(phone.press("#"))
    assert "Para crear una cuenta nueva, oprima 1." in phone.last.text
    phone.press("1")
    spanish_only(phone.last)
    for keys in ["654321", "4682"]:
        spanish_only(phone.press(keys))
    registered = phone.press("4682")
    spanish_only(registered)
    assert "Su código de registro es:" in registered.text
    code = re.search(r"registro es: ((?:\d, ){5}\d)", registered.text).group(1).replace(", ", "")
    account = Account.objects.get(member_id="654321")
    assert account.language == "es"
    menu = phone.press("2")
    spanish_only(menu)
    assert "Menú principal" in menu.text and "For English, press 9." in menu.text
    refused = phone.press("2")
    assert "Su cuenta todavía no está verificada" in refused.text
    phone.hang_up()

    from django.core.management import call_command

    call_command("verify_code", code)
    deposit(account=account, amount_cents=100_50)

    # The next call from the home number: Spanish from the first word, PIN alone.
    phone = make_phone("+12027770000")
    answer = phone.dial(language=None)
    spanish_only(answer)
    assert "Bienvenidos a MyiBot." in answer.text and "Para otras opciones" in answer.text
    spanish_only(phone.press("4682"))
    balance = phone.press("1")
    spanish_only(balance)
    assert "Su saldo es de 100 dólares con 50 centavos." in balance.text
    phone.press("2")
    phone.press("2")
    spanish_only(phone.press("25#"))
    confirm = phone.press(recipient.code)
    spanish_only(confirm)
    assert "Va a enviar 25 dólares a Jane Doe" in confirm.text
    sent = phone.press("1")
    spanish_only(sent)
    assert "Listo. Su envío de 25 dólares a Jane Doe está en proceso." in sent.text
    assert "Su código de confirmación es:" in sent.text
    assert Transfer.objects.get().amount_cents == 2500
    phone.press("2")
    assert "Su saldo es de 75 dólares con 50 centavos." in phone.press("1").text


def test_9_at_the_main_menu_switches_language_and_remembers_it(signed_in, account, make_phone):
    menu = signed_in.last
    assert "Para español, oprima 9." in menu.text
    switched = signed_in.press("9")
    spanish_only(switched)
    assert "Menú principal" in switched.text and "For English, press 9." in switched.text
    account.refresh_from_db()
    assert account.language == "es"
    spanish_only(signed_in.press("1"))
    back = signed_in.press("2")
    assert "Menú principal" in back.text
    english = signed_in.press("9")
    assert "Main menu" in english.text
    account.refresh_from_db()
    assert account.language == "en"


def test_the_language_chosen_at_sign_in_is_saved_on_the_account(make_phone, account):
    phone = make_phone("+12025009999")
    phone.dial(language="es")
    phone.press(account.member_id)
    spanish_only(phone.press("3971"))
    account.refresh_from_db()
    assert account.language == "es"


def test_one_language_means_no_language_prompt_and_no_9(phone, account, settings):
    settings.IVR_LANGUAGES = ["en"]
    phone.caller = "+12025009999"
    answer = phone.dial(language=None)
    assert "Please enter your 6-digit member ID" in answer.text
    assert "español" not in answer.text
    phone.press(account.member_id)
    menu = phone.press("3971")
    assert "español" not in menu.text
    assert "That key is not an option." in phone.press("9").text


@pytest.mark.parametrize(
    "language, cents, words",
    [
        ("en", 7550, "75 dollars and 50 cents"),
        ("en", 101, "1 dollar and 1 cent"),
        ("en", 0, "0 dollars"),
        ("en", 2500, "25 dollars"),
        ("en", 50, "50 cents"),
        ("es", 7550, "75 dólares con 50 centavos"),
        ("es", 101, "un dólar con un centavo"),
        ("es", 0, "0 dólares"),
        ("es", 2100, "21 dólares"),
        ("es", 1, "un centavo"),
    ],
)
def test_amounts_are_said_in_each_language_with_plurals(language, cents, words):
    with translation.override(language):
        assert spoken_amount(cents) == words


@pytest.mark.parametrize(
    "language, cents, words",
    [("en", 100, "1 dollar"), ("en", 2500, "25 dollars"), ("es", 100, "un dólar"), ("es", 2500, "25 dólares")],
)
def test_whole_dollars_are_said_in_each_language(language, cents, words):
    with translation.override(language):
        assert spoken_dollars(cents) == words


@pytest.mark.parametrize(
    "language, heard",
    [("en", "This account is locked for 2 hours."), ("es", "Esta cuenta está bloqueada por 2 horas.")],
)
def test_the_lock_duration_is_said_in_each_language(make_phone, account, language, heard):
    from datetime import timedelta

    from django.utils import timezone

    Account.objects.filter(pk=account.pk).update(
        home_locked_until=timezone.now() + timedelta(minutes=90), language=language
    )
    phone = make_phone(account.home_number)
    phone.dial(language=None)
    assert heard in phone.press("3971").text


# No dead air after a key ------------------------------------------------------------


@pytest.mark.parametrize("entry", ["home", "member_id"])
@pytest.mark.parametrize(
    "delivered",
    [
        {"Digits": "", "FinishedOnKey": "#"},
        {"Digits": ""},
        {"Digits": "#"},
        {"Digits": "", "FinishedOnKey": ""},
        None,
    ],
    ids=["a", "b", "as a key", "silence", "d: the redirect"],
)
def test_pound_alone_or_silence_at_an_entry_prompt_leads_at_once_to_the_same_choice(
    make_phone, account, entry, delivered
):
    """Nothing depends on FinishedOnKey: every way a lone # (or silence) may arrive is the same empty entry."""
    phone = make_phone(account.home_number if entry == "home" else "+12025009999")
    answer = phone.dial()
    gather = answer.gather
    assert (gather.get("finishOnKey"), gather.get("actionOnEmptyResult")) == ("#", "true")
    choice = phone.redirect() if delivered is None else phone.twiml(phone.post(gather.get("action"), delivered))
    expected = "To enter a member ID, press 2." if entry == "home" else "To create a new account, press 1."
    assert expected in choice.text
    assert choice.gather.get("numDigits") == "1"
    assert CallSession.objects.get(call_sid=phone.call_sid).timeouts == 1, "it counts toward three silences"


def test_no_code_reads_finished_on_key():
    from pathlib import Path

    from django.conf import settings

    for package in ("ivr", "accounts", "myibot"):
        for path in Path(settings.BASE_DIR, package).rglob("*.py"):
            if "FinishedOnKey" in path.read_text(encoding="utf-8"):
                code = [
                    line
                    for line in path.read_text(encoding="utf-8").splitlines()
                    if "FinishedOnKey" in line and not line.strip().startswith("#")
                ]
                assert not any("POST" in line or "get(" in line for line in code), (path, code)


def simulated(caller: str = "+12027770000", lang: str | None = "en", **kwargs) -> SimulatedCall:
    from django.conf import settings

    return SimulatedCall(
        base_url=settings.BASE_URL,
        auth_token=settings.TWILIO_AUTH_TOKEN,
        transport=InProcess(),
        caller=caller,
        lang=lang,
        **kwargs,
    )


@pytest.mark.parametrize("pound", "abd")
@pytest.mark.parametrize(
    "keys", [["#", "2", "#"], ["#", "3"]], ids=["home, member ID, then register", "home, register"]
)
def test_the_simulators_clock_shows_no_wait_after_pound_alone(account, keys, pound):
    call = simulated(caller=account.home_number, pound=pound)
    call.place(scripted(keys))
    waits = [event for event in call.transcript if event.kind == "wait"]
    assert [event.text for event in waits][: len(keys)] == ["0 s"] * len(keys), [e.text for e in call.transcript]
    assert not any(event.flagged for event in call.transcript)


def test_the_simulators_clock_shows_one_timeout_after_pound_alone_under_c(account):
    from django.conf import settings

    call = simulated(caller=account.home_number, pound="c")
    call.place(scripted(["#", "3"]))
    assert call.totals.wait_seconds == settings.IVR_GATHER_TIMEOUT


def test_the_simulator_shows_zero_waiting_after_every_offered_key_in_a_whole_call(account, recipient):
    call = simulated(caller=account.home_number)
    call.place(scripted(["3971", "1", "2", "2", "25#", recipient.code, "1", "1", "2", "9", "1"]))
    assert call.totals.wait_seconds == 0, [(e.kind, e.text) for e in call.transcript]
    assert not any(event.flagged for event in call.transcript)
    heard = " ".join(event.text for event in call.transcript if event.kind == "say")
    assert "Su saldo es de 75 dólares." in heard


# Caller effort ---------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "es"])
def test_caller_effort_before_the_balance(account, lang):
    """Entries, words heard and seconds waited before the balance: a returning caller on a home
    number, a returning caller on another phone, and a new caller (who registers first). The
    figures are in each assertion's message, not printed between pytest's progress dots."""
    Account.objects.filter(pk=account.pk).update(language=lang)
    home = simulated(caller=account.home_number, lang=lang)
    home.place(scripted(["3971", "1"]))
    elsewhere = simulated(caller="+12025009999", lang=lang)
    elsewhere.place(scripted([account.member_id, "3971", "1"]))
    new = simulated(caller="+12027770000", lang=lang)
    new.place(scripted(["#", "1", "654321", "4682", "4682", "2", "1"]))

    figures = {}
    for name, call in (("home number", home), ("other phone", elsewhere), ("new caller", new)):
        before = call.totals_before("Your balance is|Su saldo es")
        assert before is not None, name
        figures[name] = before
    shown = "; ".join(
        f"[{lang}] {name}: {before.entries} entries, {before.words} words, {before.wait_seconds:g} s waiting "
        f"after entries, {before.seconds:.0f} s in all before the balance"
        for name, before in figures.items()
    )
    assert all(before.wait_seconds == 0 for before in figures.values()), shown
    assert figures["home number"].entries == 2, f"a returning caller on a home number: the PIN, then 1. {shown}"
    assert figures["other phone"].entries == 4, f"language, member ID, PIN, 1. {shown}"
    assert figures["new caller"].entries == 8, f"language, #, 1, member ID, PIN twice, 2, 1. {shown}"


def test_a_doubtful_caller_id_on_a_home_number_is_asked_its_language(phone, account):
    """Skipping the prompt would tell whoever spoofs the number that it has an account."""
    Account.objects.filter(pk=account.pk).update(language="es")
    answer = phone.twiml(phone.post("/twilio/voice", {"StirVerstat": "TN-Validation-Failed-B"}))
    assert "For English, press 1." in answer.text and "Para español, oprima 2." in answer.text
