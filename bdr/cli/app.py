"""What every command shares: the loaded config, the output mode, and the way to print.

Commands print through :class:`App` only: a rich table or lines on a terminal, one JSON
document with ``--json`` (and nothing else on stdout; an error is a JSON document too,
``{"error": ..., "exit_code": ...}``), progress on stderr when it is a TTY: every long step
(an upload or download, a restore's fetch, a Qdrant import, a verify) as a bar with the
bytes done, the rate and the time left (:class:`RichProgress`, fed by :mod:`bdr.util.progress`),
nothing with ``--json`` or ``-q``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, SpinnerColumn, TextColumn
from rich.progress import Progress as RichBar
from rich.progress import Task as RichTask
from rich.table import Table
from rich.text import Text

from bdr.config import Config, load_config
from bdr.engines.base import Step, StepStatus
from bdr.errors import BdrError
from bdr.util import progress as tracking
from bdr.util.durations import format_duration, parse_duration


def size_text(n: float) -> str:
    """Bytes as people read them: ``512 B``, ``3.4 MiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _amount(value: float, unit: str) -> str:
    return size_text(value) if unit == "B" else f"{int(value):,} {unit}".rstrip()


class _Done(ProgressColumn):
    """``12.3 MiB / 76.0 MiB`` (or ``1,024 / 5,000 points``); just what is done when the total is unknown."""

    def render(self, task: RichTask) -> Text:
        unit = str(task.fields.get("unit", "B"))
        if not unit:
            return Text("")
        done = _amount(task.completed, unit)
        return Text(f"{done} / {_amount(task.total, unit)}" if task.total is not None else done)


class _Rate(ProgressColumn):
    def render(self, task: RichTask) -> Text:
        unit = str(task.fields.get("unit", "B"))
        speed = task.finished_speed or task.speed
        if not unit or not speed:
            return Text("")
        return Text(f"{size_text(speed)}/s" if unit == "B" else f"{speed:,.0f} {unit}/s")


class _Eta(ProgressColumn):
    """``ETA 1m05s`` when the total is known and the rate measured, else the time so far."""

    def render(self, task: RichTask) -> Text:
        remaining = task.time_remaining
        if task.total is not None and remaining is not None:
            return Text(f"ETA {format_duration(remaining)}")
        return Text(format_duration(task.elapsed or 0.0), style="dim")


class RichProgress:
    """A :class:`bdr.util.progress.Progress` drawn on stderr; the bar is on screen only while a task runs."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._lock = threading.Lock()
        self._bar: RichBar | None = None
        self._running = 0

    def start(self, label: str, total: int | None, unit: str) -> tracking.Task:
        with self._lock:
            if self._bar is None:
                self._bar = RichBar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), _Done(), _Rate(),
                                    _Eta(), console=self._console, transient=True)
                self._bar.start()
            task_id = self._bar.add_task(label, total=total, unit=unit)
            self._bar.refresh()  # shown at once, even a step shorter than the refresh period
            self._running += 1
            return _BarTask(self, self._bar, task_id)

    def finish(self, bar: RichBar, task_id: Any) -> None:
        with self._lock:
            bar.remove_task(task_id)
            self._running -= 1
            if self._running <= 0 and self._bar is bar:
                bar.stop()
                self._bar = None
                self._running = 0


class _BarTask:
    def __init__(self, owner: RichProgress, bar: RichBar, task_id: Any) -> None:
        self._owner = owner
        self._bar = bar
        self._id = task_id
        self._done = False

    def advance(self, amount: int) -> None:
        if not self._done:
            self._bar.advance(self._id, amount)

    def finish(self) -> None:
        if not self._done:
            self._done = True
            self._owner.finish(self._bar, self._id)


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
    emitted: bool = False
    """A JSON document went to stdout already (an error then adds none: the document says what failed)."""
    resets: list[Any] = field(default_factory=list, repr=False)
    """Undo callbacks for process-wide settings of this invocation (``--wait-lock``), run at its end."""

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
        self.emitted = True

    def emit_error(self, message: str, exit_code: int, error: BaseException | None = None) -> None:
        """An error as JSON on stdout (``--json``), unless the command's own document already went out."""
        if self.emitted:
            return
        data: dict[str, Any] = {"error": message, "exit_code": exit_code}
        if isinstance(error, BdrError):
            data["type"] = type(error).__name__
        self.emit_json(data)

    def stdout_to_stderr(self) -> contextlib.AbstractContextManager[Any]:
        """With --json, what a tool run in-process prints (pytest's report) goes to stderr: stdout is the JSON."""
        return contextlib.redirect_stdout(sys.stderr) if self.json_output else contextlib.nullcontext()

    def progress_display(self) -> tracking.Progress:
        """The bar for long steps: on a terminal, not with --json or -q (decided as each step starts, since a
        subcommand's ``--json`` is read after the group's options)."""
        return _AppProgress(self)

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
        """A spinner (with the time so far) on a TTY while an operation runs; its long steps show their own bars."""
        with tracking.track(text, None, unit=""):
            yield


def newest_json(directory: Path, pattern: str, since: float) -> tuple[Path, Any] | None:
    """The newest JSON document matching ``pattern`` written into ``directory`` since ``since`` (a run's report)."""
    found = [p for p in directory.glob(pattern) if p.is_file() and p.stat().st_mtime >= since] \
        if directory.is_dir() else []
    if not found:
        return None
    newest = max(found, key=lambda p: p.stat().st_mtime)
    try:
        return newest, json.loads(newest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class _AppProgress:
    """Draws on the app's stderr while it is interactive; shows nothing otherwise."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._bar: RichProgress | None = None

    def start(self, label: str, total: int | None, unit: str) -> tracking.Task:
        if not self._app.interactive:
            return tracking.NO_TASK
        if self._bar is None:
            self._bar = RichProgress(self._app.err)
        return self._bar.start(label, total, unit)


pass_app = click.make_pass_decorator(App, ensure=True)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(App).json_output = True
    return value


def json_option(func: Any) -> Any:
    """``--json`` on a subcommand too (``bdr list --json`` as well as ``bdr --json list``)."""
    return click.option("--json", "json_flag", is_flag=True, expose_value=False, callback=_set_json,
                        is_eager=True, help="Machine-readable output on stdout.")(func)


def set_wait_lock(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--wait-lock DURATION``: how long a command waits for the repository lock another bdr holds."""
    if value is None:
        return value
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}", ctx=ctx, param_hint="--wait-lock") from exc
    from bdr.repository import LOCK_WAIT

    token = LOCK_WAIT.set(seconds)
    ctx.ensure_object(App).resets.append(lambda: LOCK_WAIT.reset(token))
    return value


WAIT_LOCK_HELP = ("Wait up to DURATION (e.g. 10m) for the repository lock when another bdr run holds it, "
                  "instead of failing at once (exit 5).")


def wait_lock_option(func: Any) -> Any:
    """``--wait-lock DURATION`` on a command that takes the repository lock."""
    return click.option("--wait-lock", metavar="DURATION", expose_value=False, callback=set_wait_lock,
                        help=WAIT_LOCK_HELP)(func)
