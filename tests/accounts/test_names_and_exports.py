"""Recipient names are names (letters, spaces, ' - .), and no export hands a spreadsheet a formula."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts import ledger
from accounts.models import Recipient, Transfer
from accounts.validators import recipient_name_clean
from myibot.csv_export import safe_cell

pytestmark = pytest.mark.django_db

GOOD = ["José Núñez", "O'Brien", "Mary-Jane St. John", "李小龙", "हिन्दी नाम", "Zoë Ångström", "x" * 60]
BAD = {
    "Jane 😀": "'😀' is not allowed",
    "Jane\tDoe": "a tab is not allowed",
    "Jane\x0bDoe": "U+000B (a control character) is not allowed",
    "<b>Jane</b>": "'<' is not allowed",
    "=SUM(A1)": "'=' is not allowed",
    "Tom & Jerry": "'&' is not allowed",
    "Jane Doe 2": "'2' is not allowed",
    "x" * 61: "this one has 61",
    "- .": "it needs at least one letter",
}


@pytest.fixture
def staff(admin_client):
    admin_client.defaults["wsgi.url_scheme"] = "https"
    admin_client.defaults["SERVER_PORT"] = "443"
    return admin_client


@pytest.mark.parametrize("name", GOOD)
def test_it_accepts_names_in_any_alphabet(name):
    assert recipient_name_clean(name) == name


def test_it_keeps_a_name_in_its_composed_form():
    # "é" typed as e and a combining accent is the same letter as "é" typed whole.
    assert recipient_name_clean("Jose\u0301 Nun\u0303ez ") == "José Nuñez"


@pytest.mark.parametrize(("name", "why"), BAD.items(), ids=[repr(name[:12]) for name in BAD])
def test_it_refuses_anything_but_a_name_and_says_the_rule(name, why):
    with pytest.raises(ValidationError) as refused:
        recipient_name_clean(name)
    message = refused.value.messages[0]
    assert message.startswith(
        "A recipient's name is 1 to 60 characters: letters (any alphabet), spaces, and ' - . only"
    )
    assert why in message


@pytest.mark.parametrize(("name", "why"), BAD.items(), ids=[repr(name[:12]) for name in BAD])
def test_create_recipient_refuses_a_name_that_is_not_one(db, name, why):
    with pytest.raises(CommandError, match="letters \\(any alphabet\\), spaces"):
        call_command("create_recipient", "246810", *name.split(" "))
    assert not Recipient.objects.exists()


def test_create_recipient_takes_a_name_with_accents(db):
    call_command("create_recipient", "246810", "José", "Núñez")
    assert Recipient.objects.get().name == "José Núñez"


@pytest.mark.parametrize(("name", "why"), BAD.items(), ids=[repr(name[:12]) for name in BAD])
def test_the_admin_refuses_a_name_that_is_not_one(staff, name, why):
    response = staff.post(
        reverse("admin:accounts_recipient_add"), {"code": "135790", "name": name, "active": "on"}, secure=True
    )
    assert response.status_code == 200  # the form again, with the rule
    assert "letters (any alphabet), spaces, and &#x27; - . only" in response.content.decode()
    assert not Recipient.objects.exists()


def test_the_admin_refuses_a_renaming_that_is_not_a_name(staff, recipient):
    staff.post(
        reverse("admin:accounts_recipient_change", args=[recipient.pk]),
        {"name": "<script>", "active": "on"},
        secure=True,
    )
    recipient.refresh_from_db()
    assert recipient.name == "Jane Doe"


def test_the_admin_takes_a_name_with_accents(staff):
    staff.post(
        reverse("admin:accounts_recipient_add"), {"code": "135790", "name": "José Núñez", "active": "on"}, secure=True
    )
    assert Recipient.objects.get(code="135790").name == "José Núñez"


# Exports -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-$12.50", "'-$12.50"),  # text, as format_dollars writes it: quoted like any other
        ("Jane Doe", "Jane Doe"),
        ("", ""),
        (None, ""),
        (Decimal("-12.50"), Decimal("-12.50")),
        (-5, -5),  # numbers the code writes as numbers cannot be formulas
    ],
)
def test_it_neutralises_a_cell_a_spreadsheet_would_run(value, written):
    assert safe_cell(value) == written


def test_the_transfers_export_writes_hostile_names_as_text(staff, account):
    # Names from before names were checked, put straight into the database.
    hostile = ['=HYPERLINK("http://x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "\tTab", "\rReturn"]
    for number, name in enumerate(hostile):
        Recipient.objects.create(code=f"10000{number}", name=name)
        ledger.transfer_submit(
            account=account, recipient_code=f"10000{number}", amount_cents=1_00, idempotency_key=f"hostile:{number}"
        )
    response = staff.post(
        reverse("admin:accounts_transfer_changelist"),
        {"action": "export_csv", "_selected_action": list(Transfer.objects.values_list("pk", flat=True))},
        secure=True,
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    assert [row[3] for row in rows[1:]] == ["'" + name for name in hostile]
    # The amount is a number, not text: no quote in front, so a spreadsheet adds it up.
    assert {row[4] for row in rows[1:]} == {"1.00"}
