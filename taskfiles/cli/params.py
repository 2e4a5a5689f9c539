"""Commands declared once, by their typed signatures, and built into click when used.

A command is a function whose parameters read ``Annotated[type, Option(...)]`` or
``Annotated[type, Argument(...)]``; a ``click.Context`` parameter receives the context.
``App`` holds what a module declares; ``App.build`` makes the click command of one name
only when a command line needs it. This is the part of typer this CLI used, with
typer's conventions kept (``--name`` from a parameter's name, ``--x/--no-x`` for an
undeclared flag, an "Arguments" section in help, defaults and environment variables
shown); typer itself cost ~12 ms of every command's start.

Types a parameter may have: ``str``, ``int``, ``float``, ``bool``, ``Path``, any of them
``| None``, and ``list[...]`` of one (a repeatable option, or an argument taking the rest).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import click

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class Option:
    """How one parameter is read as an option: its names (default ``--param-name``)."""

    def __init__(
        self,
        *decls: str,
        help: str = "",
        envvar: str | None = None,
        min: float | None = None,
        max: float | None = None,
        metavar: str | None = None,
        hidden: bool = False,
        show_default: bool = True,
        click_type: click.ParamType[Any] | None = None,
    ) -> None:
        self.decls, self.help, self.envvar, self.metavar = decls, help, envvar, metavar
        self.min, self.max, self.hidden, self.show_default = min, max, hidden, show_default
        self.click_type = click_type


class Argument:
    """How one parameter is read as a positional argument."""

    def __init__(self, *, help: str = "", metavar: str | None = None, show_default: bool = True) -> None:
        self.help, self.metavar, self.show_default = help, metavar, show_default
        self.min = self.max = self.click_type = None


class HelpArgument(click.Argument):
    """A positional argument with a line of help, as options have."""

    def __init__(self, decls: list[str], *, help: str, show_default: bool, **attrs: Any) -> None:
        super().__init__(decls, **attrs)
        self.help, self.show_default = help, show_default

    def make_metavar(self, ctx: click.Context) -> str:
        if self.metavar is not None:
            return self.metavar if self.required or self.metavar.startswith("[") else f"[{self.metavar}]"
        name = (self.name or "").upper()
        name = name if self.required else f"[{name}]"
        type_name = self.type.get_metavar(self, ctx)
        name += f":{type_name}" if type_name else ""
        return name + ("..." if self.nargs != 1 else "")

    def get_help_record(self, ctx: click.Context) -> tuple[str, str]:
        extra = []
        if self.required:
            extra.append("required")
        elif self.show_default and (default := self.get_default(ctx, call=False)) not in (None, ""):
            extra.append(f"default: {default}")
        notes = f"[{'; '.join(extra)}]" if extra else ""
        return self.make_metavar(ctx), "  ".join(part for part in (self.help, notes) if part)


def format_parameters(command: click.Command, ctx: click.Context, formatter: click.HelpFormatter) -> None:
    """The "Arguments" and "Options" sections of a command's help."""
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None:
            (arguments if isinstance(param, click.Argument) else options).append(record)
    for title, rows in (("Arguments", arguments), ("Options", options)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


class Command(click.Command):
    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        format_parameters(self, ctx, formatter)

    def format_arguments(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Written by format_options (click 8.5 would write them a second time)."""


class Group(click.Group):
    """Lists its commands in the order they were declared."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        format_parameters(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_arguments(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Written by format_options."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class Declared(NamedTuple):
    """A command as a module declared it: the function and how it is shown."""

    function: Callable[..., Any]
    help: str | None
    hidden: bool


class App:
    """The commands and groups one module (or the top level) declares, by name."""

    def __init__(
        self, help: str = "", *, cls: type[Group] = Group, command_cls: type[Command] = Command
    ) -> None:
        self.help, self.cls, self.command_cls = help, cls, command_cls
        self.declared: dict[str, Declared | App] = {}

    def command(
        self, name: str | None = None, *, help: str | None = None, hidden: bool = False
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare the decorated function as command ``name`` (default: its name, dashed)."""

        def declare(function: Callable[..., Any]) -> Callable[..., Any]:
            self.declared[name or function.__name__.replace("_", "-")] = Declared(function, help, hidden)
            return function

        return declare

    def add_group(self, group: App, name: str) -> None:
        self.declared[name] = group

    def names(self) -> list[str]:
        """The names declared: commands first, then groups, each in order (as help lists them)."""
        commands = [name for name, what in self.declared.items() if isinstance(what, Declared)]
        return [*commands, *(name for name in self.declared if name not in commands)]

    def build(self, name: str) -> click.Command:
        """The click command (or group) declared as ``name``."""
        what = self.declared[name]
        if isinstance(what, App):
            return what.group(name)
        return command(what.function, name, help=what.help, hidden=what.hidden)

    def group(self, name: str | None = None) -> Group:
        """This app as a click group, every command built."""
        group = self.cls(name, help=self.help, no_args_is_help=True, context_settings=CONTEXT_SETTINGS)
        for declared in self.names():
            group.add_command(self.build(declared), declared)
        return group


def command(
    function: Callable[..., Any],
    name: str,
    *,
    help: str | None = None,
    hidden: bool = False,
    cls: type[click.Command] = Command,
) -> click.Command:
    """The click command of ``function``: its parameters, its docstring as help."""
    params, callback = parameters(function)
    return cls(
        name,
        params=params,
        callback=callback,
        help=help or inspect.getdoc(function),
        hidden=hidden,
        context_settings=CONTEXT_SETTINGS,
    )


def parameters(function: Callable[..., Any]) -> tuple[list[click.Parameter], Callable[..., Any]]:
    """The click parameters of ``function`` and the callback click calls with their values."""
    hints = typing.get_type_hints(function, include_extras=True)
    params: list[click.Parameter] = []
    converters: dict[str, Callable[[Any], Any]] = {}
    contexts: list[str] = []
    for name, signature in inspect.signature(function).parameters.items():
        hint = hints.get(name, str)
        if hint is click.Context:
            contexts.append(name)
            continue
        if typing.get_origin(hint) is typing.Annotated:
            kind, marker = hint.__origin__, hint.__metadata__[0]
        else:  # as typer reads a bare parameter: an argument, or with a default an option
            kind, marker = hint, Argument() if signature.default is inspect.Parameter.empty else Option()
        param, converter = _parameter(name, kind, marker, signature.default)
        params.append(param)
        if converter:
            converters[name] = converter

    def callback(**values: Any) -> Any:
        for name, convert in converters.items():
            values[name] = convert(values[name])
        if contexts:
            ctx = click.get_current_context()
            values.update(dict.fromkeys(contexts, ctx))
        return function(**values)

    return params, callback


def _parameter(
    name: str, kind: Any, marker: Option | Argument, default: Any
) -> tuple[click.Parameter, Callable[[Any], Any] | None]:
    required = default is inspect.Parameter.empty
    # A required parameter has no default at all: click (8.3+) takes a None default as a value.
    defaulted = {} if required else {"default": default}
    kind = _without_none(kind)
    many = typing.get_origin(kind) is list
    item = typing.get_args(kind)[0] if many else kind
    converter = _listed(None if required else default) if many else None
    if isinstance(marker, Argument):
        argument = HelpArgument(
            [name],
            type=_click_type(item, marker),
            required=required,
            **defaulted,
            nargs=-1 if many else 1,
            metavar=marker.metavar,
            help=marker.help,
            show_default=marker.show_default,
        )
        return argument, converter
    flag = item is bool
    dashed = name.replace("_", "-")
    decls = marker.decls or ((f"--{dashed}/--no-{dashed}",) if flag else (f"--{dashed}",))
    option = click.Option(
        [name, *decls],
        type=None if flag else _click_type(item, marker),
        is_flag=True if flag else None,
        multiple=many,
        required=required,
        **defaulted,
        help=marker.help,
        hidden=marker.hidden,
        show_default=marker.show_default,
        show_envvar=True,
        envvar=marker.envvar,
        metavar=marker.metavar,
    )
    return option, converter


def _without_none(kind: Any) -> Any:
    """``X`` of ``X | None``."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        (kind,) = [each for each in typing.get_args(kind) if each is not type(None)]
    return kind


def _click_type(kind: Any, marker: Option | Argument) -> click.ParamType[Any]:
    if marker.click_type is not None:
        return marker.click_type
    if kind is int:
        return click.IntRange(marker.min, marker.max) if _bounded(marker) else click.INT  # type: ignore[arg-type]
    if kind is float:
        return click.FloatRange(marker.min, marker.max) if _bounded(marker) else click.FLOAT
    if kind is Path:
        return click.Path(path_type=Path)
    if kind is str:
        return click.STRING
    raise TypeError(f"no command-line type for {kind!r}; use str, int, float, bool or Path")


def _bounded(marker: Option | Argument) -> bool:
    return marker.min is not None or marker.max is not None


def _listed(default: Any) -> Callable[[Sequence[Any]], list[Any] | None]:
    """A repeatable option's values as a list; none given: ``None`` when that is the default."""

    def listed(values: Sequence[Any]) -> list[Any] | None:
        return list(values) if values or default is not None else None

    return listed
