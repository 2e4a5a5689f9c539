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
import math
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import click

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class Argument:
    """How one parameter is read as a positional argument (and what an option shares)."""

    def __init__(
        self,
        *,
        help: str = "",
        metavar: str | None = None,
        show_default: bool = True,
        min: float | None = None,
        max: float | None = None,
        click_type: click.ParamType[Any] | None = None,
    ) -> None:
        self.help = help
        self.metavar = metavar
        self.show_default = show_default
        self.min = min
        self.max = max
        self.click_type = click_type  # instead of the type the annotation gives (e.g. a Choice)


class Option(Argument):
    """How one parameter is read as an option: its names (default ``--param-name``)."""

    def __init__(self, *decls: str, envvar: str | None = None, hidden: bool = False, **shared: Any) -> None:
        super().__init__(**shared)
        self.decls = decls
        self.envvar = envvar
        self.hidden = hidden


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
    """Help with an "Arguments" section; no shell completion (click's would answer any
    command line run with ``_TASK_COMPLETE`` set, with exit 0 and nothing done)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        format_parameters(self, ctx, formatter)

    def format_arguments(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Written by format_options (click 8.5 would write them a second time)."""

    def _main_shell_completion(self, *args: Any, **kwargs: Any) -> None:
        """Never complete: the command runs as given."""


class Group(Command, click.Group):
    """Lists its commands in the order they were declared."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        self.format_commands(ctx, formatter)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class Declared(NamedTuple):
    """A command as a module declared it: the function and how it is shown."""

    function: Callable[..., Any]
    help: str | None
    hidden: bool


class App:
    """The commands and groups one module (or the top level) declares, by name."""

    def __init__(self, help: str = "", *, cls: type[Group] = Group) -> None:
        self.help = help
        self.cls = cls
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

    def group(self, name: str | None = None, *, options: Callable[..., Any] | None = None) -> Group:
        """This app as a click group, every command declared so far built; ``options`` is a
        function whose parameters are the group's own options (given before a command)."""
        params, callback = parameters(options) if options else ([], None)
        group = self.cls(
            name,
            help=self.help,
            params=params,
            callback=callback,
            no_args_is_help=True,
            context_settings=CONTEXT_SETTINGS,
        )
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
            kind, marker, *_ = typing.get_args(hint)
        else:  # as typer reads a bare parameter: an argument, or with a default an option
            kind, marker = hint, Argument() if signature.default is inspect.Parameter.empty else Option()
        try:
            if not isinstance(marker, Argument):
                raise TypeError("annotate it Annotated[type, Option(...)] or Argument(...)")
            param, converter = _parameter(name, kind, marker, signature.default)
        except TypeError as error:
            raise TypeError(f"{function.__qualname__}({name}): {error}") from None
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
    name: str, kind: Any, marker: Argument, default: Any
) -> tuple[click.Parameter, Callable[[Any], Any] | None]:
    required = default is inspect.Parameter.empty
    # A required parameter has no default at all: click (8.3+) takes a None default as a value.
    defaulted = {} if required else {"default": default}
    kind = _without_none(kind)
    many = typing.get_origin(kind) is list
    item = typing.get_args(kind)[0] if many else kind
    converter = _listed(None if required else default) if many else None
    if not isinstance(marker, Option):
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
        show_envvar=marker.envvar is not None,
        envvar=marker.envvar,
        metavar=marker.metavar,
    )
    return option, converter


def _without_none(kind: Any) -> Any:
    """``X`` of ``X | None``."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kinds = [each for each in typing.get_args(kind) if each is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"no command-line type for {kind!r}: one type, or one type | None")
        return kinds[0]
    return kind


def _click_type(kind: Any, marker: Argument) -> click.ParamType[Any]:
    if marker.click_type is not None:
        return marker.click_type
    if kind is int:
        return click.IntRange(marker.min, marker.max) if _bounded(marker) else click.INT  # type: ignore[arg-type]
    if kind is float:
        return FiniteRange(marker.min, marker.max) if _bounded(marker) else FINITE
    if kind is Path:
        return click.Path(path_type=Path)
    if kind is str:
        return TEXT
    raise TypeError(f"no command-line type for {kind!r}; use str, int, float, bool or Path")


class Text(click.types.StringParamType):
    """Text that is UTF-8: bytes that are not (which Python keeps as lone surrogates) are
    a usage error here, rather than a crash where the text is first written."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = super().convert(value, param, ctx)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(f"{text.encode('utf-8', 'surrogateescape')!r} is not UTF-8 text", param, ctx)
        return text


class Finite(click.types.FloatParamType):
    """A number, never nan or inf (a --loop of nan seconds spins; of inf, it crashes)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number


class FiniteRange(Finite, click.FloatRange):
    """A finite number within the bounds."""


TEXT = Text()
FINITE = Finite()


def _bounded(marker: Argument) -> bool:
    return marker.min is not None or marker.max is not None


def _listed(default: Any) -> Callable[[Sequence[Any]], list[Any] | None]:
    """A repeatable option's values as a list; none given: ``None`` when that is the default."""

    def listed(values: Sequence[Any]) -> list[Any] | None:
        return list(values) if values or default is not None else None

    return listed
