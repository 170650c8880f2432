"""bdr killed (SIGKILL) at every step of a backup, and a full disk met while it copies.

On Redis started from a shell with AOF on (the backup copies the AOF, with automatic
rewrites switched off meanwhile), with ``--compress`` and without, the ``bdr backup redis``
CLI kills itself at a failpoint. The test then checks what the operator would check:

- the live data and every setting (``CONFIG GET *``) are as before once the next bdr run on
  that instance ran; until then ``bdr status`` names a setting bdr left changed
  (``auto-aof-rewrite-percentage`` is 0 while the AOF is copied);
- the set the killed run was writing is never listed (``bdr list``), and the next backup
  sweeps it; that next backup succeeds, and restores.

ENOSPC at the copy: the backup fails with one line and exit 9, and leaves nothing (no set,
no setting changed, no record of one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bdr.repository import Repository
from tests.faults.harness import KILLED, backup_ok, bdr, listed_ids, status_json, write_config
from tests.operators import OperatorRedis, Operators

SETTING = "auto-aof-rewrite-percentage"
OWN_VALUE = "77"
"""The operator's own value of the setting bdr switches off (not the default, so "put back" means put back)."""

POINTS = {
    "backup.snapshot.after": "BGSAVE done, nothing copied yet",
    "backup.settings.changed": f"{SETTING} is 0, the AOF not copied yet",
    "backup.copy": "in the middle of copying the files into the set",
    "backup.commit": "every object written, the manifest not yet",
}
LEFT_CHANGED = ("backup.settings.changed", "backup.copy")
"""Where the kill falls inside the block that has the setting switched off."""


def kill_at(point: str, compress: bool) -> str:
    # uncompressed, the copy stores file by file: the 2nd time is after dump.rdb was written into the set
    return f"{point}:kill@2" if point == "backup.copy" and not compress else f"{point}:kill"


def leaves_objects(point: str, compress: bool) -> bool:
    """Whether the killed run had written objects (a set without a manifest) when it died."""
    return point == "backup.commit" or (point == "backup.copy" and not compress)


def settings_of(op: OperatorRedis) -> dict[str, str]:
    """Every setting of the live server (``CONFIG GET *``)."""
    return {str(k): str(v) for k, v in op.client().config_get("*").items()}


def aof_instance(operators: Operators, tmp_path: Path) -> tuple[OperatorRedis, Path, dict[str, str]]:
    op = operators.start("shell")  # redis-server redis.conf from a shell: AOF on
    op.client().config_set(SETTING, OWN_VALUE)
    return op, write_config(tmp_path / "bdr.yaml", op), settings_of(op)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed"])
@pytest.mark.parametrize("point", list(POINTS))
def test_backup_killed(operators: Operators, tmp_path: Path, point: str, compress: bool) -> None:
    op, config, settings = aof_instance(operators, tmp_path)
    client = op.client()
    flags = ["--compress"] if compress else []
    first = backup_ok(config, *flags)
    data = op.fill(200)

    killed = bdr(config, "backup", "redis", *flags, failpoints=kill_at(point, compress))
    assert killed.code == KILLED, killed.output

    assert client.mget(list(data)) == list(data.values()), "the live data changed"
    left = client.config_get(SETTING)[SETTING] != OWN_VALUE
    assert left == (point in LEFT_CHANGED), f"{SETTING} is {client.config_get(SETTING)[SETTING]}"
    status = bdr(config, "status", "redis")
    assert (SETTING in status.stdout) == left, status.output
    if left:
        assert client.config_get(SETTING)[SETTING] == "0", "not the value bdr sets while it copies the AOF"
        assert f"{SETTING} '{OWN_VALUE}' to be put back" in status.stdout, status.output
        assert status_json(config)["settings_left_changed"], "bdr status --json says nothing is left changed"
    repo = Repository.open(tmp_path / "repo")
    crashed = repo.incomplete()
    assert len(crashed) == leaves_objects(point, compress), crashed
    assert listed_ids(config) == [first], "a set of the killed run is listed"

    second = backup_ok(config, *flags)  # the next bdr run on that instance: puts the setting back, sweeps the set
    assert settings_of(op) == settings, "a setting differs from before the killed backup"
    assert repo.incomplete() == []
    assert listed_ids(config) == [second, first]
    assert SETTING not in bdr(config, "status", "redis").stdout

    client.set("written:after:backup", "1")
    restored = bdr(config, "restore", "redis", second, "--yes")
    assert restored.code == 0, restored.output
    assert client.mget(list(data)) == list(data.values())
    assert client.get("written:after:backup") is None, "the set taken after the kill was not what was restored"
    assert settings_of(op) == settings


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed"])
def test_enospc_while_copying_leaves_nothing(operators: Operators, tmp_path: Path, compress: bool) -> None:
    op, config, settings = aof_instance(operators, tmp_path)
    client = op.client()
    data = op.fill(200)
    flags = ["--compress"] if compress else []
    failed = bdr(config, "backup", "redis", *flags, failpoints="backup.copy:enospc")
    assert failed.code != 0, failed.output
    assert settings_of(op) == settings, "a setting was left changed"
    assert client.mget(list(data)) == list(data.values())
    repo = Repository.open(tmp_path / "repo")
    assert repo.sets() == [] and repo.incomplete() == []
    assert not list((tmp_path / "repo").glob("redis/*")), "the failed run left a set directory"
    assert status_json(config)["settings_left_changed"] == []
    assert backup_ok(config, *flags)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed"])
def test_enospc_while_copying_is_one_line_and_exit_9(operators: Operators, tmp_path: Path, compress: bool) -> None:
    op, config, _ = aof_instance(operators, tmp_path)
    op.fill(50)
    failed = bdr(config, "backup", "redis", *(["--compress"] if compress else []),
                 failpoints="backup.copy:enospc")
    assert failed.code == 9, failed.output
    (line,) = failed.error_lines
    assert line.startswith("bdr: error: no space left on "), line
    assert "failpoint backup.copy" in line or str(tmp_path / "repo") in line, "the line names no path"
    assert "unexpected" not in failed.stderr and "Traceback" not in failed.stderr
