"""bdr lint reads redis.conf the way a real redis-server does.

Each case starts redis-server with a config file (and command-line options, as a compose
``command:`` passes them), asks it ``CONFIG GET`` for the persistence settings, and compares
them with what :mod:`bdr.lint.persistence` computed from the same file. A value Redis refuses
must make redis-server exit, as the lint rule says.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from bdr.formats.redis_conf import parse_redis_args, parse_redis_conf
from bdr.lint.persistence import resolve
from bdr.runtime.process import redis_binary
from bdr.util.host import free_port

DATA = Path(__file__).parent.parent / "data" / "lint"


@contextmanager
def redis_server(conf: Path, args: Sequence[str], tmp_path: Path) -> Iterator[redis.Redis]:
    port = free_port()
    data = tmp_path / f"data-{port}"
    data.mkdir()
    argv = [redis_binary(), str(conf), *args, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
            "--daemonize", "no", "--logfile", "", "--protected-mode", "no"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield client
    finally:
        process.terminate()
        process.wait(timeout=20)
        client.close()


def lint_view(conf: Path, args: Sequence[str]) -> dict[str, str]:
    _, options = parse_redis_args(list(args), Path("docker-compose.yml"), 1)
    settings = resolve([*parse_redis_conf(conf).directives, *options])
    return {
        "save": " ".join(f"{r.seconds} {r.changes}" for r in settings.save_rules),
        "appendonly": "yes" if settings.appendonly else "no",
        "appendfsync": settings.appendfsync,
        "aof-use-rdb-preamble": "yes" if settings.rdb_preamble else "no",
        "stop-writes-on-bgsave-error": "yes" if settings.stop_writes_on_bgsave_error else "no",
        "no-appendfsync-on-rewrite": "yes" if settings.no_appendfsync_on_rewrite else "no",
    }


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("conf", "args"),
    [
        ("clean", ()),
        ("changes", ()),
        ("clean", ("--appendonly", "no", "--save", "")),
        ("clean", ("--save", "60", "1")),
        ("defaults", ()),
        ("quoted", ()),
    ],
)
def test_lint_computes_what_redis_runs_with(conf: str, args: tuple[str, ...], tmp_path: Path) -> None:
    if conf == "defaults":
        path = write(tmp_path, "redis.conf", "# nothing about persistence\nport 6379\n")
    elif conf == "quoted":
        write(tmp_path, "persistence.conf", 'save ""\nSAVE 120 1 30 100\nAppendFsync "always"\n')
        path = write(tmp_path, "redis.conf", f"appendonly 'yes'\ninclude {tmp_path}/persistence.conf\n"
                                             "no-appendfsync-on-rewrite yes\n")
    else:
        # the container's /data does not exist here: redis-server chdirs to `dir` while reading the file
        text = (DATA / conf / "redis.conf").read_text().replace("dir /data", f"dir {tmp_path}")
        path = write(tmp_path, "redis.conf", text)
    expected = lint_view(path, args)
    with redis_server(path, args, tmp_path) as client:
        live = {key: client.config_get(key)[key] for key in expected}
    assert live == expected


@pytest.mark.parametrize("line", ["appendonly maybe", "save 900", "appendfsync sometimes", 'logfile "unbalanced'])
def test_what_lint_calls_fatal_stops_redis_server(line: str, tmp_path: Path) -> None:
    path = write(tmp_path, "redis.conf", f"{line}\n")
    conf = parse_redis_conf(path)
    assert conf.problems or resolve(conf.directives).invalid
    done = subprocess.run([redis_binary(), str(path), "--port", str(free_port())], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode != 0
    assert "FATAL CONFIG FILE ERROR" in done.stdout + done.stderr
