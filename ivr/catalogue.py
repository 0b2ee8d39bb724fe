"""The Spanish (and any other) message catalogue: what callers hear, found in the code, checked and compiled.

Every sentence a caller hears goes through gettext. This module finds those
sentences in the source (the gettext calls in ivr/ and accounts/), keeps each
locale/<lang>/LC_MESSAGES/django.po in step with them, and compiles the .mo
that Django reads, with polib, so that neither a developer's machine nor the
Docker image needs GNU gettext. The .mo is built, never committed: a stale one
would silently serve old words.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polib
from django.conf import settings

from myibot import languages

SOURCES = ("ivr", "accounts")
SKIPPED = ("migrations", "management")
GETTEXT = {"_", "gettext", "gettext_lazy"}
NGETTEXT = {"ngettext", "ngettext_lazy"}


@dataclass(frozen=True)
class Message:
    msgid: str
    msgid_plural: str = ""
    where: str = ""


def source_messages(base: Path | None = None) -> dict[tuple[str, str], Message]:
    """Every translatable string in the caller-facing code, keyed by (msgid, msgid_plural)."""
    base = base or Path(settings.BASE_DIR)
    found: dict[tuple[str, str], Message] = {}
    for package in SOURCES:
        for path in sorted((base / package).rglob("*.py")):
            if any(part in SKIPPED for part in path.relative_to(base).parts):
                continue
            for message in _messages_in(path, base):
                found.setdefault((message.msgid, message.msgid_plural), message)
    return found


def _messages_in(path: Path, base: Path) -> Iterator[Message]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        texts = [arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
        where = f"{path.relative_to(base)}:{node.lineno}"
        if name in GETTEXT and texts:
            yield Message(texts[0], where=where)
        elif name in NGETTEXT and len(texts) >= 2:
            yield Message(texts[0], texts[1], where=where)


def po_path(language: str) -> Path:
    return Path(settings.BASE_DIR) / "locale" / language / "LC_MESSAGES" / "django.po"


def catalogue_languages() -> list[str]:
    """Every registered language but English, whose words are the msgids themselves."""
    return [code for code in languages.registered() if code != languages.SOURCE]


def problems(language: str) -> list[str]:
    """What a caller would hear wrong in this language: missing, empty, fuzzy, stale or mismatched entries."""
    path = po_path(language)
    if not path.exists():
        return [f"{path} is missing"]
    catalogue = polib.pofile(str(path))
    entries = {(entry.msgid, entry.msgid_plural): entry for entry in catalogue if not entry.obsolete}
    found = source_messages()
    issues = []
    for key, message in found.items():
        entry = entries.get(key)
        if entry is None:
            issues.append(f"not in the catalogue: {message.msgid!r} ({message.where})")
        elif "fuzzy" in entry.flags:
            issues.append(f"fuzzy: {message.msgid!r}")
        elif not (all(entry.msgstr_plural.values()) and entry.msgstr_plural if entry.msgid_plural else entry.msgstr):
            issues.append(f"untranslated: {message.msgid!r} ({message.where})")
        elif not _placeholders_survive(entry):
            issues.append(f"placeholders differ: {message.msgid!r}")
    issues += [f"no longer in the code: {key[0]!r}" for key in entries if key not in found]
    return issues


def _placeholders_survive(entry: polib.POEntry) -> bool:
    """The translation uses the source's placeholders, no more, no fewer.

    A plural form for one may say the number in words ("un dólar", "una hora":
    voices read "1 dólar" as "uno dólar"), so only the last, most general form
    must keep every placeholder; no form may bring one of its own.
    """
    if not entry.msgid_plural:
        return _placeholders(entry.msgid) == _placeholders(entry.msgstr)
    source = _placeholders(entry.msgid_plural)
    forms = [entry.msgstr_plural[index] for index in sorted(entry.msgstr_plural)]
    return all(_placeholders(form) <= source for form in forms) and _placeholders(forms[-1]) == source


def _placeholders(text: str) -> set[str]:
    import re

    return set(re.findall(r"%\([a-z_]+\)[sd]", text))


def update(language: str) -> tuple[int, int]:
    """Add new strings (untranslated) and drop ones the code no longer has; returns (added, dropped)."""
    path = po_path(language)
    path.parent.mkdir(parents=True, exist_ok=True)
    catalogue = polib.pofile(str(path)) if path.exists() else _new_catalogue(language)
    found = source_messages()
    present = {(entry.msgid, entry.msgid_plural) for entry in catalogue}
    added = 0
    for key, message in found.items():
        if key not in present:
            entry = polib.POEntry(msgid=message.msgid, msgid_plural=message.msgid_plural, occurrences=[])
            if message.msgid_plural:
                entry.msgstr_plural = {0: "", 1: ""}
            if "%(" in message.msgid:
                entry.flags.append("python-format")
            catalogue.append(entry)
            added += 1
    stale = [entry for entry in catalogue if (entry.msgid, entry.msgid_plural) not in found]
    for entry in stale:
        catalogue.remove(entry)
    catalogue.save(str(path))
    return added, len(stale)


def _new_catalogue(language: str) -> polib.POFile:
    catalogue = polib.POFile(wrapwidth=100)
    catalogue.metadata = {
        "Project-Id-Version": "MyiBot",
        "Language": language,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
        "Plural-Forms": "nplurals=2; plural=(n != 1);",
    }
    return catalogue


def compile_all() -> list[Path]:
    """Write each language's .mo from its .po; returns the files written."""
    written = []
    for language in catalogue_languages():
        path = po_path(language)
        if path.exists():
            polib.pofile(str(path)).save_as_mofile(str(path.with_suffix(".mo")))
            written.append(path.with_suffix(".mo"))
    return written


def stale_compiled() -> list[Path]:
    """The .mo files that are missing or older than their .po."""
    stale = []
    for language in catalogue_languages():
        po = po_path(language)
        mo = po.with_suffix(".mo")
        if po.exists() and (not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime):
            stale.append(mo)
    return stale
