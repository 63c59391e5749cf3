"""The parameter form, generated from ``engine.params.param_specs()`` (never duplicated).

Basic parameters are shown; advanced and compute ones sit in collapsed sections. Each row:
label, input (numbers) or check box (booleans), unit; the one-line help is the tooltip and is
shown under the form for the focused field. :meth:`ParamForm.read` turns the widgets back into
a :class:`~engine.params.ClassifyParams` or a list of problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Collapsible, Input, Label

from engine.params import ClassifyParams, ParamSpec, param_specs

__all__ = ["ParamForm", "field_id"]

SECTIONS = (("basic", None), ("advanced", "Advanced"), ("compute", "Compute"))


def field_id(name: str) -> str:
    return f"param-{name}"


def _initial(spec: ParamSpec, value: Any) -> str:
    if value is None:
        return ""
    if spec.type is float:
        return f"{value:g}"
    return str(value)


class ParamField(Horizontal):
    """One parameter: label, editor, unit."""

    def __init__(self, spec: ParamSpec, value: Any) -> None:
        super().__init__(classes="field")
        self.spec = spec
        self.value = value

    def compose(self) -> ComposeResult:
        spec = self.spec
        yield Label(spec.label, classes="field-label")
        if spec.type is bool:
            sw = Checkbox("", value=bool(self.value), id=field_id(spec.name))
            sw.tooltip = spec.help
            yield sw
        else:
            kind: Literal["integer", "number", "text"] = (
                "integer" if spec.type is int else "number" if spec.type is float else "text"
            )
            inp = Input(
                _initial(spec, self.value),
                type=kind,
                id=field_id(spec.name),
                placeholder="auto" if spec.optional else "",
                valid_empty=spec.optional,
            )
            inp.tooltip = spec.help
            yield inp
        yield Label(spec.unit, classes="field-unit")


class ParamForm(Vertical):
    """All parameters of :class:`ClassifyParams`, grouped by level."""

    DEFAULT_CSS = "ParamForm { height: auto; }"

    @dataclass
    class Changed(Message):
        form: ParamForm

    @dataclass
    class HelpFor(Message):
        spec: ParamSpec

    def __init__(self, params: ClassifyParams | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.params = params or ClassifyParams()
        self.specs = param_specs()

    def compose(self) -> ComposeResult:
        for level, title in SECTIONS:
            fields = [
                ParamField(s, getattr(self.params, s.name)) for s in self.specs if s.level == level
            ]
            if not fields:
                continue
            if title is None:
                yield from fields
            else:
                with Collapsible(title=title, collapsed=True, id=f"section-{level}"):
                    yield from fields

    def spec_of(self, widget: Widget) -> ParamSpec | None:
        wid = widget.id or ""
        return next((s for s in self.specs if field_id(s.name) == wid), None)

    def read(self) -> tuple[ClassifyParams | None, list[str], set[str]]:
        """``(params or None, problems, names of invalid fields)``."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        bad: set[str] = set()
        for spec in self.specs:
            w = self.query_one(f"#{field_id(spec.name)}")
            if isinstance(w, Checkbox):
                values[spec.name] = bool(w.value)
                continue
            assert isinstance(w, Input)
            text = w.value.strip()
            if not text:
                if spec.optional:
                    values[spec.name] = None
                else:
                    problems.append(f"{spec.label}: a value is needed ({spec.flag})")
                    bad.add(spec.name)
                continue
            try:
                values[spec.name] = (
                    spec.type(float(text))
                    if spec.type is int and float(text).is_integer()
                    else spec.type(text)
                )
            except ValueError:
                problems.append(
                    f"{spec.label}: {text!r} is not a valid "
                    f"{'whole number' if spec.type is int else 'number'}"
                )
                bad.add(spec.name)
        if problems:
            return None, problems, bad
        params = ClassifyParams(**values)
        return params, [], bad

    def mark_invalid(self, names: set[str]) -> None:
        for f in self.query(ParamField):
            f.set_class(f.spec.name in names, "-invalid")

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: Message) -> None:
        self.post_message(self.Changed(self))

    def on_descendant_focus(self, event: Any) -> None:
        spec = self.spec_of(event.widget) if hasattr(event, "widget") else None
        if spec is not None:
            self.post_message(self.HelpFor(spec))
