"""``bdr demo``: the whole job on embedded defaults, start to finish, with timings.

Starts a local redis-server on 127.0.0.1 (AOF on, as the runbook configures it), loads the
agent backend's dataset, backs it up, destroys the data (kill -9 and the data files
deleted), restores it through the runbook, verifies it, and prints what happened.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import click

from bdr import api
from bdr.cli.app import App, pass_app
from bdr.config import Config
from bdr.engines.redis.info import DIGEST_UNAVAILABLE, digest
from bdr.errors import CheckFailed
from bdr.runtime.process import spawn_redis
from bdr.util.durations import format_duration


@click.command("demo")
@click.option("--workdir", default=".bdr-demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo's Redis data and repository live (wiped first).")
@click.option("--users", default=2000, show_default=True, help="Size of the dataset.")
@pass_app
def demo_command(app: App, workdir: str, users: int) -> None:
    """Back up, destroy, restore and verify a local Redis with the agent backend's data."""
    root = Path(workdir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    timings: list[tuple[str, float, str]] = []

    def timed(label: str, detail: str, begun: float) -> None:
        timings.append((label, time.perf_counter() - begun, detail))
        app.line(f"  {label:<28} {format_duration(timings[-1][1]):>8}  {detail}")

    from bdr.drill.workload import load_redis_workload  # imports qdrant-client: not at every bdr start

    app.line(f"[bold]bdr demo[/] in {root}")
    begun = time.perf_counter()
    server = spawn_redis(root / "redis", name="production", appendonly=True)
    timed("start redis-server", server.url(), begun)
    config = dataclasses.replace(Config(), repository=str(root / "backups"),
                                 redis={"production": server.instance})
    try:
        client = server.client()
        begun = time.perf_counter()
        counts = load_redis_workload(client, users=users, sessions=users * 2, caches=users, conversations=users // 10)
        keys = client.dbsize()
        before = digest(client)
        timed("load dataset", f"{keys} keys: sessions (TTL), RBAC, caches, conversation streams "
              f"({counts.messages} messages)", begun)

        begun = time.perf_counter()
        outcome = api.backup(config, "redis", compress=True)
        timed("bdr backup redis --compress", outcome.manifest.id, begun)

        begun = time.perf_counter()
        server.kill()
        shutil.rmtree(server.data_path())
        server.data_path().mkdir()
        timed("disaster", "kill -9 and data files deleted", begun)

        begun = time.perf_counter()
        result = api.restore(config, "redis", "latest")
        steps = ", ".join(f"{s.name} {format_duration(s.seconds)}" for s in result.steps)
        timed("bdr restore redis latest", steps, begun)

        begun = time.perf_counter()
        report = api.verify(config, outcome.manifest.id, restore_test=True)
        timed("bdr verify --restore-test", "ok" if report.ok else "FAILED", begun)

        after_keys = client.dbsize()
        after = digest(client)
        compared = DIGEST_UNAVAILABLE not in (before, after)
        same = after_keys == keys and (after == before or not compared)
        app.line("")
        for check in result.checks:
            mark = "-" if check.skipped else ("✔" if check.ok else "✘")
            app.line(f"  {mark} {check.name}: {check.detail}{' (not verified)' if check.skipped else ''}")
        verdict = ("equal" if after == before else "DIFFERENT") if compared else \
            "not compared (the server refuses DEBUG)"
        app.line(f"keys before {keys}, after {after_keys}; DEBUG DIGEST {verdict}")
        total = sum(t for _, t, _ in timings)
        app.line(f"[green]recovered[/] in {format_duration(result.seconds)} (restore), demo total "
                 f"{format_duration(total)}" if same and report.ok and result.ok else "[red]demo FAILED[/]")
        app.line(f"repository: {root / 'backups'}  (try: bdr list -d {root / 'backups'})")
        if not (same and report.ok and result.ok):
            raise CheckFailed(detail="the restored data differs from the original")
    finally:
        server.stop()


def register(cli: click.Group) -> None:
    cli.add_command(demo_command)
