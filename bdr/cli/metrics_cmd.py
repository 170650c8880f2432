"""``bdr metrics``, ``bdr exporter`` and ``bdr alerts``: backups and drills seen from Prometheus."""

from __future__ import annotations

import errno
import signal
from pathlib import Path
from types import FrameType

import click

from bdr.cli.app import App, pass_app
from bdr.errors import UsageError


@click.group("metrics")
def metrics_group() -> None:
    """Prometheus metrics of the backups and drills (text exposition format)."""


@metrics_group.command("write")
@click.option("--textfile", metavar="FILE", type=click.Path(dir_okay=False),
              help="Where to write (default: metrics_textfile in bdr.yaml), e.g. "
              "/var/lib/node_exporter/textfile/bdr.prom.")
@click.option("--destination", "-d", "destinations", metavar="DIR", multiple=True, type=click.Path(file_okay=False),
              help="Another local repository to count (repeatable).")
@pass_app
def metrics_write(app: App, textfile: str | None, destinations: tuple[str, ...]) -> None:
    """Recompute the metrics and rewrite the node_exporter textfile atomically."""
    from bdr.monitoring.metrics import write_textfile

    with app.progress("reading the repositories"):
        path = write_textfile(app.config, textfile, destinations)
    if path is None:
        raise UsageError(detail="no textfile: pass --textfile FILE or set metrics_textfile in bdr.yaml")
    app.line(f"metrics written to {path}")


@metrics_group.command("show")
@click.option("--destination", "-d", "destinations", metavar="DIR", multiple=True, type=click.Path(file_okay=False),
              help="Another local repository to count (repeatable).")
@pass_app
def metrics_show(app: App, destinations: tuple[str, ...]) -> None:
    """Print the metrics as a scrape would get them."""
    from bdr.monitoring.metrics import exposition

    click.echo(exposition(app.config, destinations), nl=False)


@click.command("exporter")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=9877, show_default=True,
              help="TCP port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--cache", "cache_seconds", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds a computed scrape is served again before the repositories are listed anew "
              "(each listing of an S3 repository costs requests).")
@click.option("--destination", "-d", "destinations", metavar="DIR", multiple=True, type=click.Path(file_okay=False),
              help="Another local repository to count (repeatable).")
@pass_app
def exporter_command(app: App, port: int, host: str, cache_seconds: float, destinations: tuple[str, ...]) -> None:
    """Serve the metrics over HTTP for Prometheus (GET /metrics) until interrupted."""
    from bdr.monitoring.exporter import make_server

    try:
        server = make_server(app.config, host, port, cache_seconds, destinations)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(detail=f"{host}:{port} is already in use: pick another --port") from exc
        raise UsageError(detail=f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # systemd's stop: finish cleanly, like Ctrl-C
    app.err.print(f"bdr exporter serving {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command("alerts")
@click.option("--output", "-o", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the rules there (default: print them).")
@pass_app
def alerts_command(app: App, output: str | None) -> None:
    """Prometheus alert rules with the thresholds of bdr.yaml (check them with `promtool check rules`)."""
    from bdr.monitoring.alerts import render_rules, write_rules

    if output is None:
        click.echo(render_rules(app.config), nl=False)
        return
    write_rules(app.config, Path(output))
    app.line(f"alert rules written to {output}; load them with rule_files: in prometheus.yml")


def register(cli: click.Group) -> None:
    cli.add_command(metrics_group)
    cli.add_command(exporter_command)
    cli.add_command(alerts_command)
