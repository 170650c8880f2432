"""An operator's stop/start/status command: its failures are one line naming the command in bdr.yaml."""

from __future__ import annotations

import pytest

from bdr.errors import CommandFailed, ConfigError
from bdr.runtime.base import run_command


def test_a_command_that_is_not_installed_names_its_place_in_bdr_yaml() -> None:
    with pytest.raises(ConfigError, match=r"redis\.cache\.commands\.stop: no-such-manager-bdr not found on PATH"):
        run_command(["no-such-manager-bdr", "stop"], where="redis.cache.commands.stop", timeout=5)


def test_a_failing_command_shows_the_end_of_its_output() -> None:
    with pytest.raises(CommandFailed, match=r"exit code 3\): refused: unit masked") as failed:
        run_command(["sh", "-c", "echo refused: unit masked >&2; exit 3"], where="x", timeout=5)
    assert failed.value.exit_code == CommandFailed.exit_code


def test_without_check_the_exit_status_and_output_are_returned() -> None:
    done = run_command(["sh", "-c", "echo true; exit 1"], where="x", timeout=5, check=False)
    assert (done.returncode, done.stdout, done.output) == (1, "true\n", "true")


def test_a_command_that_hangs_is_stopped_at_its_time_limit() -> None:
    with pytest.raises(CommandFailed, match="still running after 0s"):
        run_command(["sleep", "30"], where="x", timeout=0.3)
