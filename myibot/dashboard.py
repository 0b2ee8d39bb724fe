"""The operators' dashboard, as panels the apps register: the project knows no app.

Each app registers, in its AppConfig.ready(), a template and a function that
builds its context (as Django's admin registers ModelAdmins); the admin's index
shows the panels in the order they were registered. Context keys are the app's
own: two panels naming the same key is a mistake, and raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone


@dataclass(frozen=True)
class Panel:
    template: str
    build: Callable[[datetime], dict[str, object]]


_panels: list[Panel] = []


def register(template: str, build: Callable[[datetime], dict[str, object]]) -> None:
    """Show template on the dashboard, with build(now)'s context. Registering the same panel twice is a no-op."""
    panel = Panel(template, build)
    if panel not in _panels:
        _panels.append(panel)


def context(now: datetime | None = None) -> dict[str, object]:
    """Every panel's context, and the templates to show in order, for the admin's index."""
    now = now or timezone.now()
    shown: dict[str, object] = {"dashboard_templates": [panel.template for panel in _panels], "now": now}
    for panel in _panels:
        built = panel.build(now)
        if clash := shown.keys() & built.keys():
            raise ValueError(f"dashboard panels both name {sorted(clash)}")
        shown.update(built)
    return shown
