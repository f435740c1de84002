"""The frame of the option groups: one option declared once (``Opt``), options applied and parsed together
(``Group``), and the refusal of options a command's chosen mode does not use."""

from __future__ import annotations

from typing import Any, Callable

import click

from ...core.errors import NinExportError

__all__ = ["Opt", "opt", "Group", "given", "refuse_unused"]


class Opt:
    """One click option: its declarations and attributes, applied to a command as a decorator."""

    def __init__(self, decls: tuple[str, ...], attrs: dict[str, Any]) -> None:
        self.decls, self.attrs = decls, attrs
        self.name: str = click.Option(list(decls), **attrs).name or ""

    def but(self, **attrs: Any) -> Opt:
        """The same option with some attributes changed (a command's own help text)."""
        return Opt(self.decls, {**self.attrs, **attrs})

    def __call__(self, f: Callable) -> Callable:
        return click.option(*self.decls, **self.attrs)(f)


def opt(*decls: str, **attrs: Any) -> Opt:
    return Opt(decls, attrs)


class Group:
    """Options applied together, in this order, and parsed together."""

    def __init__(self, *options: Opt) -> None:
        self.options = options

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def __call__(self, f: Callable) -> Callable:
        for o in reversed(self.options):
            f = o(f)
        return f

    def part(self, *names: str) -> Group:
        """Some of the options (to place them apart in --help); ``parse`` on the whole group still takes all."""
        return Group(*(o for o in self.options if o.name in names))

    def but(self, **helps: str) -> Group:
        """The same options, with a command's own help text for some (keyed by option name)."""
        return type(self)(*(o.but(help=helps[o.name]) if o.name in helps else o for o in self.options))

    def take(self, kw: dict[str, Any]) -> dict[str, Any]:
        """Remove this group's values from a command's keyword arguments and return them."""
        return {n: kw.pop(n) for n in self.names if n in kw}


def given(names: tuple[str, ...]) -> list[str]:
    """The options among ``names`` that were typed on the command line (not defaults), as --help spells them,
    in --help's order."""
    ctx = click.get_current_context()
    return [
        p.opts[0]
        for p in ctx.command.params
        if isinstance(p, click.Option)
        and p.name in names
        and ctx.get_parameter_source(p.name) is click.core.ParameterSource.COMMANDLINE
    ]


def refuse_unused(names: tuple[str, ...], mode: str) -> None:
    """An option given on the command line that the chosen mode does not use is refused, not ignored."""
    if found := given(names):
        one = len(found) == 1
        raise NinExportError(f"{', '.join(found)} {'does' if one else 'do'} nothing {mode}: drop {'it' if one else 'them'}")
