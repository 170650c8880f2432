"""The ``bdr`` entry point: global options, error handling, and the command modules.

Every :class:`~bdr.errors.BdrError` becomes one line on stderr and its documented exit
code; any other exception too (exit 1), with the traceback only under ``--debug``.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from bdr import __version__
from bdr.cli.app import App
from bdr.errors import BdrError

COMMAND_MODULES = (
    "bdr.cli.init_cmd",
    "bdr.cli.backup_cmd",
    "bdr.cli.restore_cmd",
    "bdr.cli.verify_cmd",
    "bdr.cli.list_cmd",
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
)


class BdrGroup(click.Group):
    """A click group that turns errors into one clear line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BdrError as exc:
            app = ctx.find_object(App)
            if app is not None and app.debug:
                raise
            click.echo(f"bdr: error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("bdr: interrupted; nothing was changed that was not rolled back", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            app = ctx.find_object(App)
            if app is not None and app.debug:
                raise
            click.echo(f"bdr: unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)",
                       err=True)
            ctx.exit(1)


@click.group(cls=BdrGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_path", envvar="BDR_CONFIG", type=click.Path(dir_okay=False),
              help="Policy file (default: ./bdr.yaml, else embedded defaults).")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable output on stdout, no progress.")
@click.option("--debug", is_flag=True, help="Log everything and show tracebacks.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
@click.version_option(__version__, prog_name="bdr")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, json_output: bool, debug: bool, quiet: bool) -> None:
    """bdr: backup and disaster recovery for Redis, Qdrant, configuration and secrets."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = App(config_path=config_path, json_output=json_output, debug=debug, quiet=quiet)


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(cli)


def main() -> None:
    cli(prog_name="bdr")


if __name__ == "__main__":
    main()
