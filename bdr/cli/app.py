"""What every command shares: the loaded config, the output mode, and the way to print.

Commands print through :class:`App` only: a rich table or lines on a terminal, one JSON
document with ``--json`` (and nothing else on stdout), progress on stderr when it is a TTY.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bdr.config import Config, load_config
from bdr.durations import format_duration
from bdr.engines.base import Step, StepStatus


@dataclass
class App:
    """Per-invocation state, reachable from any command with ``@pass_app``."""

    config_path: str | None = None
    json_output: bool = False
    debug: bool = False
    quiet: bool = False
    _config: Config | None = field(default=None, repr=False)
    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True,
                                                         width=None if sys.stdout.isatty() else 200))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def interactive(self) -> bool:
        return not self.json_output and not self.quiet and sys.stderr.isatty()

    def emit_json(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))

    def line(self, text: str = "", style: str | None = None) -> None:
        if not self.json_output and not self.quiet:
            self.out.print(text, style=style)

    def note(self, text: str) -> None:
        """A progress line on stderr (not in --json or --quiet mode)."""
        if not self.json_output and not self.quiet:
            self.err.print(text)

    def warn(self, text: str) -> None:
        if not self.json_output:
            self.err.print(f"[yellow]warning:[/] {text}")

    def table(self, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.json_output or self.quiet:
            return
        table = Table(title=title, title_justify="left", show_lines=False)
        for n, column in enumerate(columns):
            table.add_column(column, overflow="fold", no_wrap=n == 0)
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        self.out.print(table)

    def print_step(self, step: Step) -> None:
        """Progress callback for a step log: one line per finished step."""
        if self.json_output or self.quiet:
            return
        mark = {StepStatus.OK: "[green]✔[/]", StepStatus.FAILED: "[red]✘[/]", StepStatus.SKIPPED: "[dim]-[/]"}
        detail = f"  [dim]{step.detail}[/]" if step.detail else ""
        self.err.print(f"  {mark[step.status]} {step.name:<16} {format_duration(step.seconds):>8}{detail}")

    @contextmanager
    def progress(self, text: str) -> Iterator[None]:
        """A spinner on a TTY while a long operation runs; silent otherwise."""
        if not self.interactive:
            yield
            return
        with self.err.status(text):
            yield


pass_app = click.make_pass_decorator(App, ensure=True)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(App).json_output = True
    return value


def json_option(func: Any) -> Any:
    """``--json`` on a subcommand too (``bdr list --json`` as well as ``bdr --json list``)."""
    return click.option("--json", "json_flag", is_flag=True, expose_value=False, callback=_set_json,
                        is_eager=True, help="Machine-readable output on stdout.")(func)
