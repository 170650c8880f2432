"""The dashboards service of the drills: a grafana.db with Grafana's schema, held open by a stand-in service.

No Grafana server can be installed where the drills run, so the service is the tests' stand-in
(:data:`tests.grafana_fixtures.STANDIN`): a long-running process that holds grafana.db open and
commits a timestamped heartbeat every 50 ms, started and stopped by commands as supervisord
would (``runtime: command``). bdr drives it exactly as it would drive Grafana that way; it is
not Grafana, and the report says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bdr.config import Config, GrafanaInstance
from tests.grafana_fixtures import grafana_tree, standin_commands

STANDIN_NOTE = "a stand-in process holding a real grafana.db schema open (no Grafana server can be installed here)"


@contextlib.contextmanager
def running_grafana(base: Path, config: Config) -> Iterator[tuple[Config, dict[str, Path]]]:
    """``config`` with a Grafana ``production`` (runtime command: the stand-in) over a fresh grafana.db."""
    paths = grafana_tree(base)
    commands = standin_commands(base, paths["db"])
    instance = GrafanaInstance(name="production", db_path=str(paths["db"]), config_file=str(paths["ini"]),
                               provisioning=str(paths["provisioning"]), runtime="command", commands=commands,
                               unit=None, token_env=None, timeout=20.0)
    subprocess.run(commands["start"], check=True, timeout=30)
    try:
        yield dataclasses.replace(config, grafana={"production": instance}, grafana_default="production"), paths
    finally:
        subprocess.run(commands["stop"], check=False, timeout=30)
