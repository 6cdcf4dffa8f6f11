"""Click options generated from a config dataclass, and a command whose --help shows its options in sections.

`config_options(TrainConfig)` gives `ganforge train` one option per setting that has a --help section
(`group` in the field's metadata, see `ganforge.config._setting`): its name (--field-name, or `flags`),
default, help, type and section all come from the field, so an option cannot drift from its setting.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import click

# The sections of a sectioned command's --help, in order; options of no section follow under "Other options".
SECTIONS = ("data", "optimisation", "augmentation", "evaluation", "runtime")


class GroupedOption(click.Option):
    """An option that names the --help section it is listed in (`group`, one of SECTIONS; None: the last)."""

    def __init__(self, *args: Any, group: str | None = None, **kwargs: Any) -> None:
        if group is not None and group not in SECTIONS:
            raise ValueError(f"unknown --help section {group!r}; use one of {SECTIONS}")
        super().__init__(*args, **kwargs)
        self.group = group


class SectionedCommand(click.Command):
    """A command whose --help lists its options by section (see GroupedOption), in the order of SECTIONS."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: dict[str | None, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                rows.setdefault(getattr(param, "group", None), []).append(record)
        col_max = 30  # click's default: longer option names put their help on the next line
        width = min(max((len(name) for section in rows.values() for name, _ in section), default=0), col_max)
        for group in (*SECTIONS, None):
            if rows.get(group):
                # One column of help texts across the sections (write_dl sizes each section by its own names).
                own = min(max(len(name) for name, _ in rows[group]), col_max)
                with formatter.section(f"{group.capitalize()} options" if group else "Other options"):
                    formatter.write_dl(rows[group], col_max=col_max, col_spacing=2 + width - own)


class IntChoice(click.Choice):
    """A choice of whole numbers, shown and matched as text (as click.Choice of strings is in every click
    version) and passed on as an int."""

    def __init__(self, choices: Sequence[int]) -> None:
        super().__init__([str(c) for c in choices])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return int(super().convert(str(value), param, ctx))


# metadata "kind" -> the option's type.
KINDS: dict[str, Callable[[], click.ParamType]] = {"folder": lambda: click.Path(file_okay=False)}


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of the dataclass `cls` that are options: those with a --help section (`group`)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("group")]


def config_options(cls: type, kinds: dict[str, Callable[[], click.ParamType]] | None = None) -> Callable:
    """A decorator that adds to a click command one option per option field of the dataclass `cls`, in field
    order. Field metadata: `help`, `group` (the --help section), and optionally `choices` (a vocabulary),
    `range` ((min, max), None for an open end), `kind` (a key of `kinds` or KINDS), `flags` (the option's
    names) and `multiple` (a text setting whose option may be repeated; the values are joined with commas). bool fields become --name/--no-name switches; the default is the field's default."""
    kinds = {**KINDS, **(kinds or {})}
    hints = typing.get_type_hints(cls)

    def decorate(f: Callable) -> Callable:
        for fld in reversed(option_fields(cls)):
            flags, kwargs = _option(fld, _base(hints[fld.name]), kinds)
            f = click.option(*flags, fld.name, cls=GroupedOption, **kwargs)(f)
        return f

    return decorate


def _option(
    fld: dataclasses.Field, base: type, kinds: dict[str, Callable[[], click.ParamType]]
) -> tuple[tuple[str, ...], dict[str, Any]]:
    meta = fld.metadata
    name = fld.name.replace("_", "-")
    if fld.default is dataclasses.MISSING:
        raise ValueError(f"{fld.name}: an option needs a default")
    kwargs: dict[str, Any] = {"default": fld.default, "help": meta["help"], "group": meta["group"]}
    flags = tuple(meta.get("flags", (f"--{name}",)))
    if meta.get("multiple"):  # a text setting given any number of times: the values joined with commas
        kwargs.update(multiple=True, default=(), show_default=False, callback=lambda ctx, param, v: ",".join(v))
        return flags, kwargs
    if base is bool:
        return (f"--{name}/--no-{name}",), kwargs
    if "choices" in meta:
        kwargs["type"] = IntChoice(meta["choices"]) if base is int else click.Choice(meta["choices"])
    elif "kind" in meta:
        kwargs["type"] = kinds[meta["kind"]]()
    elif "range" in meta:
        low, high = meta["range"]
        kwargs["type"] = click.IntRange(low, high) if base is int else click.FloatRange(low, high)
    elif base in (int, float):
        kwargs["type"] = base
    return flags, kwargs


def _base(hint: Any) -> type:
    """The type of a field, without None: `int | None` -> int."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [h for h in typing.get_args(hint) if h is not type(None)]
    return typing.get_origin(hint) or hint
