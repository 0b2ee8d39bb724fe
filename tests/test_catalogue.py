"""Every sentence a caller hears has its Spanish, and the catalogue Django reads is the one in the repository."""

from __future__ import annotations

import polib
import pytest
from django.core.management import CommandError, call_command

from ivr import catalogue


def test_every_caller_facing_string_is_translated_into_spanish():
    assert catalogue.problems("es") == []


def test_the_source_scan_finds_the_strings_callers_hear():
    found = {msgid for msgid, _plural in catalogue.source_messages()}
    assert {
        "Please enter your 4-digit PIN.",
        "Your balance is %(amount)s.",
        "%(count)d dollar",
        "It looks like a year.",
        "Welcome to MyiBot.",
    } <= found
    assert len(found) > 60


def test_a_missing_or_untranslated_string_is_reported(tmp_path, settings, monkeypatch):
    po = polib.pofile(str(catalogue.po_path("es")))
    po.remove(next(entry for entry in po if entry.msgid == "Welcome to MyiBot."))
    next(entry for entry in po if entry.msgid == "Goodbye.").msgstr = ""
    next(entry for entry in po if entry.msgid == "A PIN has 4 digits.").flags.append("fuzzy")
    target = tmp_path / "es" / "LC_MESSAGES" / "django.po"
    target.parent.mkdir(parents=True)
    po.save(str(target))
    monkeypatch.setattr(catalogue, "po_path", lambda language: tmp_path / language / "LC_MESSAGES" / "django.po")

    issues = catalogue.problems("es")
    assert any("not in the catalogue: 'Welcome to MyiBot.'" in issue for issue in issues)
    assert any("untranslated: 'Goodbye.'" in issue for issue in issues)
    assert any("fuzzy: 'A PIN has 4 digits.'" in issue for issue in issues)
    with pytest.raises(CommandError, match="3 problem"):
        call_command("catalogue", "--check")


def test_placeholders_must_survive_translation(tmp_path, monkeypatch):
    po = polib.pofile(str(catalogue.po_path("es")))
    next(entry for entry in po if entry.msgid == "Your balance is %(amount)s.").msgstr = "Su saldo es de %(cantidad)s."
    target = tmp_path / "es" / "LC_MESSAGES" / "django.po"
    target.parent.mkdir(parents=True)
    po.save(str(target))
    monkeypatch.setattr(catalogue, "po_path", lambda language: tmp_path / language / "LC_MESSAGES" / "django.po")
    assert catalogue.problems("es") == ["placeholders differ: 'Your balance is %(amount)s.'"]


def test_the_compiled_catalogue_is_built_from_the_po_and_never_stale():
    assert catalogue.stale_compiled() == []
    compiled = polib.mofile(str(catalogue.po_path("es").with_suffix(".mo")))
    source = polib.pofile(str(catalogue.po_path("es")))
    assert {entry.msgid: entry.msgstr for entry in compiled if not entry.msgid_plural} == {
        entry.msgid: entry.msgstr for entry in source if not entry.msgid_plural
    }


def test_no_compiled_catalogue_is_tracked_by_git():
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files", "*.mo", "db.sqlite3*"],
        capture_output=True,
        text=True,
        cwd=catalogue.po_path("es").parents[3],
    ).stdout
    assert tracked == ""


def test_a_plural_form_for_one_may_say_the_number_in_words_but_the_general_form_keeps_it(tmp_path, monkeypatch):
    po = polib.pofile(str(catalogue.po_path("es")))
    dollar = next(entry for entry in po if entry.msgid == "%(count)d dollar")
    assert dollar.msgstr_plural[0] == "un dólar", "voices read '1 dólar' as 'uno dólar'"
    dollar.msgstr_plural[1] = "dólares"
    target = tmp_path / "es" / "LC_MESSAGES" / "django.po"
    target.parent.mkdir(parents=True)
    po.save(str(target))
    monkeypatch.setattr(catalogue, "po_path", lambda language: tmp_path / language / "LC_MESSAGES" / "django.po")
    assert catalogue.problems("es") == ["placeholders differ: '%(count)d dollar'"]
