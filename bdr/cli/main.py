"""The ``bdr`` entry point: global options, error handling, and the command modules.

Every :class:`~bdr.errors.BdrError` becomes one line on stderr and its documented exit
code; any other exception too (exit 1), with the traceback only under ``--debug``. With
``--json`` the error is also a JSON document on stdout (``{"error": ..., "exit_code": ...,
"type": ...}``), usage errors included, unless the command already printed its own document.
Logging goes to stderr: warnings only (botocore's and the other libraries' INFO lines too are
held back), everything with ``--debug``.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from bdr import __version__
from bdr.cli.app import WAIT_LOCK_HELP, App, set_wait_lock
from bdr.errors import BdrError
from bdr.util import progress as tracking

COMMAND_MODULES = (
    "bdr.cli.init_cmd",
    "bdr.cli.backup_cmd",
    "bdr.cli.copy_cmd",
    "bdr.cli.restore_cmd",
    "bdr.cli.verify_cmd",
    "bdr.cli.list_cmd",
    "bdr.cli.show_cmd",
    "bdr.cli.diff_cmd",
    "bdr.cli.find_cmd",
    "bdr.cli.demo_cmd",
    "bdr.cli.drill_cmd",
    "bdr.cli.key_cmd",
    "bdr.cli.s3_cmd",
    "bdr.cli.images_cmd",
    "bdr.cli.lint_cmd",
    "bdr.cli.repair_cmd",
    "bdr.cli.report_cmd",
    "bdr.cli.prune_cmd",
    "bdr.cli.status_cmd",
    "bdr.cli.metrics_cmd",
    "bdr.cli.schedule_cmd",
    "bdr.cli.archive_cmd",
)

LOCKING_COMMANDS = ("backup", "prune", "restore", "repair", "drill", "demo")
"""Commands that take the repository lock (a backup, a safety backup, deleting sets): each gets ``--wait-lock``."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _json_requested(args: Sequence[str]) -> bool:
    """``--json`` anywhere before ``--`` (also when parsing failed before the flag was read)."""
    words = list(args)
    return "--json" in (words[:words.index("--")] if "--" in words else words)


def _fail(app: App | None, json_mode: bool, message: str, code: int, error: BaseException | None = None) -> None:
    if json_mode:
        (app or App(json_output=True)).emit_error(message, code, error)
    click.echo(f"bdr: error: {message}", err=True)


class BdrGroup(click.Group):
    """A click group that turns errors into one clear line (and a JSON document with --json) and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        app = ctx.ensure_object(App)
        params = ctx.params
        app.config_path = params.get("config_path")
        app.json_output = app.json_output or bool(params.get("json_output"))
        app.debug = bool(params.get("debug"))
        app.quiet = bool(params.get("quiet"))
        try:
            with tracking.showing(app.progress_display()):
                return super().invoke(ctx)
        except BdrError as exc:
            if app.debug:
                raise
            _fail(app, app.json_output, exc.message, exc.exit_code, exc)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            message = "interrupted; nothing was changed that was not rolled back"
            if app.json_output:
                app.emit_error(message, 130)
            click.echo(f"bdr: {message}", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.ClickException as exc:
            if app.json_output:
                app.emit_error(exc.format_message(), exc.exit_code, exc)
            raise
        except Exception as exc:
            if app.debug:
                raise
            _fail(app, app.json_output,
                  f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)", 1, exc)
            ctx.exit(1)
        finally:
            while app.resets:
                app.resets.pop()()

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Usage errors raised before a command runs (an unknown option) are JSON too with ``--json``."""
        words = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or not _json_requested(words):
            return super().main(words, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(words, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            failed = getattr(exc, "ctx", None)
            app = failed.find_object(App) if isinstance(failed, click.Context) else None
            if not (app is not None and app.emitted):
                App(json_output=True).emit_error(exc.format_message(), exc.exit_code, exc)
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            App(json_output=True).emit_error("aborted", 1)
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _logging(debug: bool) -> None:
    """Warnings (or everything with --debug) to stderr, whatever level a library set on its own logger."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_bdr", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._bdr = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


@click.group(cls=BdrGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_path", envvar="BDR_CONFIG", type=click.Path(dir_okay=False),
              help="Policy file (default: ./bdr.yaml, else embedded defaults).")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable output on stdout, no progress; "
              "errors as {\"error\": ..., \"exit_code\": ...}.")
@click.option("--debug", is_flag=True, help="Log everything and show tracebacks.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
@click.option("--wait-lock", metavar="DURATION", expose_value=False, callback=set_wait_lock, help=WAIT_LOCK_HELP)
@click.version_option(__version__, prog_name="bdr")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, json_output: bool, debug: bool, quiet: bool) -> None:
    """bdr: backup and disaster recovery for Redis, Qdrant, configuration and secrets."""
    _logging(debug)


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(cli)

def _set_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(App).quiet = True
    return value


for _command in cli.commands.values():  # `bdr backup redis -q` as well as `bdr -q backup redis`
    if not isinstance(_command, click.Group) and not any(p.name == "quiet" for p in _command.params):
        _command.params.append(click.Option(["--quiet", "-q"], is_flag=True, expose_value=False, callback=_set_quiet,
                                            help="Print only errors."))

for _name in LOCKING_COMMANDS:
    _locking = cli.commands.get(_name)
    if _locking is not None and not any(p.name == "wait_lock" for p in _locking.params):
        _locking.params.append(click.Option(["--wait-lock"], metavar="DURATION", expose_value=False,
                                            callback=set_wait_lock, help=WAIT_LOCK_HELP))


def main() -> None:
    cli(prog_name="bdr")


if __name__ == "__main__":
    main()
