"""Where a call can be led is a registered step, and each menu's table agrees with what it says.

Steps are named by class, so that a misspelt one fails at import; what is left
to check is that every step a call can be led to is registered (@step), or a
URL and the call's state would name a step the machine does not know. The
check reads the source of every module that leads a call somewhere (ivr/steps/,
the machine, the call's model) and works out each Goto's (and go_to's) target:
a step class, a name, self.<attribute> over the registered steps that inherit
the method, or a function whose returns it works out in turn. A target it
cannot work out fails the test, unless it is one of the few checked elsewhere
here (a menu's table, a step's after_three_wrong).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
import textwrap
from types import ModuleType, SimpleNamespace

import pytest
from django.utils import translation

import ivr.steps
from ivr import machine, models
from ivr.machine import STEPS, InLanguage, Step
from ivr.steps.common import MenuPrompt
from myibot import languages

STEP_MODULES = [
    machine,
    models,
    *(importlib.import_module(f"ivr.steps.{info.name}") for info in pkgutil.iter_modules(ivr.steps.__path__)),
]
# Targets worked out by other checks below: source text of the argument -> why it is covered.
CHECKED_ELSEWHERE = {
    "option.leads_to": "every menu's table",
    "outcome.name": "every Goto",
    "current.after_three_wrong": "every step's after_three_wrong",
    "current.name": "a registered step",
    "_first_step(call)": "the first step",
}


class Unresolved(Exception):
    pass


class Targets:
    """The step names a module's Goto(...) and go_to(...) calls can lead to, and the problems found."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.problems: list[str] = []
        self.names: set[str] = set()

    def check(self) -> Targets:
        tree = ast.parse(inspect.getsource(self.module))
        self._visit(tree, owner=None)
        return self

    def _visit(self, node: ast.AST, owner: type | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                self._visit(child, owner=getattr(self.module, child.name, None))
                continue
            if isinstance(child, ast.Call) and self._leads(child):
                where = f"{self.module.__name__}:{child.lineno}"
                target = child.args[0] if child.args else None
                if target is None:
                    self.problems.append(f"{where}: no target")
                elif ast.unparse(target) not in CHECKED_ELSEWHERE:
                    try:
                        for name in self.resolve(target, owner):
                            self._registered(name, where)
                    except Unresolved as why:
                        self.problems.append(f"{where}: cannot tell where {ast.unparse(target)} leads ({why})")
            self._visit(child, owner)

    @staticmethod
    def _leads(call: ast.Call) -> bool:
        function = call.func
        return (isinstance(function, ast.Name) and function.id == "Goto") or (
            isinstance(function, ast.Attribute) and function.attr == "go_to"
        )

    def _registered(self, name: str, where: str) -> None:
        if name not in STEPS:
            self.problems.append(f"{where}: {name!r} is not a registered step")
        self.names.add(name)

    def resolve(self, node: ast.expr, owner: type | None) -> list[str]:
        if isinstance(node, ast.IfExp):
            return self.resolve(node.body, owner) + self.resolve(node.orelse, owner)
        if isinstance(node, ast.BoolOp):
            return [name for value in node.values for name in self.resolve(value, owner)]
        if isinstance(node, ast.Constant):
            raise Unresolved("a step is named by its class (or a name the machine defines), not a string")
        if isinstance(node, ast.Name):
            return [self.named(self._global(node.id), node.id)]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "self":
                return [
                    self.named(getattr(each, node.attr), f"{type(each).__name__}.{node.attr}")
                    for each in self._instances(owner)
                ]
            if node.attr == "name":
                return [self.named(self._global(node.value.id), node.value.id)]
        if isinstance(node, ast.Call) and not node.keywords:
            function = node.func
            if (
                isinstance(function, ast.Attribute)
                and isinstance(function.value, ast.Name)
                and function.value.id == "self"
                and not node.args
            ):
                return [
                    self.named(getattr(each, function.attr)(), f"{type(each).__name__}.{function.attr}()")
                    for each in self._instances(owner)
                ]
            if isinstance(function, ast.Name):
                return returns(self._global(function.id))
        raise Unresolved("not a step, a name, self.<attribute> or a function of this module")

    def _global(self, name: str) -> object:
        if not hasattr(self.module, name):
            raise Unresolved(f"{name} is not a name of {self.module.__name__}")
        return getattr(self.module, name)

    @staticmethod
    def _instances(owner: type | None) -> list[Step]:
        if owner is None:
            raise Unresolved("self outside a step class")
        return [each for each in STEPS.values() if isinstance(each, owner)]

    def named(self, value: object, said: str) -> str:
        """The step name a value stands for: a step class (which must be the one registered under its name), or a name."""
        if isinstance(value, type) and issubclass(value, Step):
            if type(STEPS.get(value.name)) is not value:
                return f"{value.__name__} (never registered with @step)"
            return value.name
        if isinstance(value, str):
            return value
        raise Unresolved(f"{said} is {value!r}, not a step")


def returns(function: object) -> list[str]:
    """What a function of a step module returns, worked out from its own source."""
    if not inspect.isfunction(function):
        raise Unresolved(f"{function!r} is not a function")
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    targets = Targets(sys.modules[function.__module__])
    found = [
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Return) and node.value is not None
        for name in targets.resolve(node.value, owner=None)
    ]
    if not found:
        raise Unresolved(f"{function.__name__} returns no step")
    return found


def option_targets(step: MenuPrompt) -> list[str]:
    """Where a menu's options lead: a step or a name; a function must be one the module scan read."""
    names = []
    for option in step.options:
        leads_to = option.leads_to
        if isinstance(leads_to, functools.partial):
            leads_to = leads_to.func
        if leads_to is None:
            names.append(step.name)
        elif isinstance(leads_to, type | str):
            names.append(Targets(machine).named(leads_to, repr(leads_to)))
        else:
            assert leads_to.__module__ in {module.__name__ for module in STEP_MODULES}, leads_to
    return names


def test_every_step_a_call_can_be_led_to_is_registered():
    problems, reached = [], set()
    for module in STEP_MODULES:
        found = Targets(module).check()
        problems += found.problems
        reached |= found.names
    for each in STEPS.values():
        # Every step is written where the scan reads (a new module in ivr/steps/ is read by itself).
        assert sys.modules[type(each).__module__] in STEP_MODULES, type(each)
        if each.after_three_wrong is not None and each.after_three_wrong not in STEPS:
            problems.append(f"{each.name}: after_three_wrong {each.after_three_wrong!r} is not a registered step")
        if isinstance(each, MenuPrompt):
            for name in option_targets(each):
                if name not in STEPS:
                    problems.append(f"{each.name}: an option leads to {name!r}, not a registered step")
                reached.add(name)
    # The members' line's first step and the deposit line's.
    first = [name for choose in machine._first_steps.values() for name in returns(choose)]
    problems += [f"the first step {name!r} is not registered" for name in first if name not in STEPS]
    assert problems == []
    # Not a check that checked nothing: the call reaches (nearly) every step this way.
    assert {
        "menu",
        "language",
        "member_id",
        "balance",
        "send_code",
        "registration_code",
        "entry",
        "deposit_language",
        "deposit_member_id",
        "deposit_done",
    } <= reached | set(first)


def test_it_finds_a_step_never_registered_and_one_named_by_a_string(tmp_path, monkeypatch):
    source = tmp_path / "wrong_steps.py"
    source.write_text(
        textwrap.dedent(
            """
            from ivr.machine import Goto, Step, step

            class Forgotten(Step):
                name = "forgotten"

            @step
            class Here(Step):
                name = "here"

                def answer(self, call, keys):
                    return Goto(Forgotten) if keys == "1" else Goto("balanse")
            """
        )
    )
    spec = importlib.util.spec_from_file_location("wrong_steps", source)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "wrong_steps", module)
    spec.loader.exec_module(module)  # registers Here
    try:
        problems = Targets(module).check().problems
    finally:
        del STEPS["here"]
    assert len(problems) == 2, problems
    assert "'Forgotten (never registered with @step)' is not a registered step" in problems[0]
    assert "cannot tell where 'balanse' leads (a step is named by its class" in problems[1]


# Each menu's table --------------------------------------------------------------------


def menus() -> list[MenuPrompt]:
    return [each for each in STEPS.values() if isinstance(each, MenuPrompt)]


def offered_keys(text: str, language: languages.Language) -> list[str]:
    """The keys a sentence offers in language's own words ("oprima 2", "press pound")."""
    press = "|".join(re.escape(words) for words in sorted(language.press, key=len, reverse=True))
    names = "|".join(re.escape(name) for name in language.key_names)
    found = re.findall(rf"\b(?:{press})\s+([0-9*#]|{names})(?!\w)", text, re.IGNORECASE)
    return [language.key_names.get(key.lower(), key) for key in found]


def said(line, call) -> tuple[str, str]:
    """A line of a prompt as said: its text, and the language it is said in."""
    if isinstance(line, InLanguage):
        with translation.override(line.language):
            return str(line.text) % dict(line.params), line.language
    return str(line), translation.get_language()


@pytest.mark.parametrize("code", list(languages.registered()))
@pytest.mark.parametrize("step_name", [each.name for each in menus()])
def test_each_option_offers_its_own_key_in_every_language(step_name, code):
    """Keys and words live side by side in one row: this catches a row (or a translation) that says another key."""
    menu = STEPS[step_name]
    keys = [option.key for option in menu.options]
    assert len(set(keys)) == len(keys) and all(len(key) == 1 for key in keys), keys
    # Words that depend on the call: each variant (deposit_failed offers a smaller amount after the daily limit).
    for scratch in ({}, {"why": "daily_limit"}):
        call = SimpleNamespace(language=code, scratch=scratch)
        with translation.override(code):
            for option in menu.options:
                words = option.words(call) if callable(option.words) else option.words
                text, spoken_in = said(words, call)
                assert offered_keys(text, languages.registered()[spoken_in]) == [option.key], (step_name, text)


@pytest.mark.parametrize(
    "code, step_name, heard",
    [
        ("en", "balance", "Please press 1 or 2."),
        ("en", "home_options", "Please press 1, 2 or 3."),
        ("es", "send_confirm", "Por favor, oprima 1 o 2."),
        ("es", "home_options", "Por favor, oprima 1, 2 o 3."),
        ("en", "menu", "That key is not an option."),
    ],
)
def test_a_wrong_key_hears_the_keys_the_table_offers(code, step_name, heard):
    with translation.override(code):
        assert str(STEPS[step_name].wrong_keys) == heard


def test_the_main_menu_offers_9_only_with_exactly_two_languages(settings):
    menu = STEPS["menu"]
    assert menu.keys.pattern == "[124539]"
    settings.IVR_LANGUAGES = ["en"]
    assert menu.keys.pattern == "[12453]"
