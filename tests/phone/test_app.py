"""The phone simulator is test and bench tooling, outside the product."""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent.parent


def imported(path: Path) -> set[str]:
    """The top-level packages a module imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_product_never_imports_the_phone():
    importers = [
        path.relative_to(ROOT)
        for package in ("myibot", "accounts", "ivr", "payments")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "phone" in imported(path)
    ]
    assert importers == []


def test_a_checkout_has_the_phone_app_and_its_call_command():
    assert "phone" in settings.INSTALLED_APPS
    assert get_commands()["call"] == "phone"
