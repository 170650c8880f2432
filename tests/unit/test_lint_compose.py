"""docker-compose files: data directories on named volumes, restart policies, command overrides."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bdr.formats.compose import MountKind, data_image, parse_compose
from bdr.lint.runner import LintOptions, LintReport, run_lint

DATA = Path(__file__).parent.parent / "data" / "lint"


def lint(tmp_path: Path, compose: str, *, conf: str | None = None) -> LintReport:
    (tmp_path / "docker-compose.yml").write_text(compose)
    if conf is not None:
        (tmp_path / "redis.conf").write_text(conf)
    return run_lint(LintOptions(), cwd=tmp_path)


def found(report: LintReport, prefix: str = "BDR-C") -> list[tuple[str, int | None]]:
    return [(f.rule, f.line) for f in report.findings if f.rule.startswith(prefix)]


def test_the_clean_compose_file_parses_with_lines() -> None:
    compose = parse_compose(DATA / "clean" / "docker-compose.yml")
    assert compose.problem is None
    redis, qdrant, api = compose.services
    assert (redis.name, redis.line, redis.data.source if redis.data else None) == ("redis", 3, "redis")
    assert [(m.kind, m.source, m.target, m.line) for m in redis.mounts] == [
        (MountKind.VOLUME, "redis_data", "/data", 11),
        (MountKind.BIND, "./redis.conf", "/usr/local/etc/redis/redis.conf", 12),
    ]
    assert redis.command == ("redis-server", "/usr/local/etc/redis/redis.conf", "--requirepass", "${REDIS_PASSWORD}")
    assert qdrant.data is not None and qdrant.data.data_dir == "/qdrant/storage"
    assert [(m.kind, m.source, m.line) for m in qdrant.mounts] == [(MountKind.VOLUME, "qdrant_data", 24)]
    assert api.data is None
    assert [(e.name, e.line) for e in api.environment][:2] == [("REDIS_URL", 33), ("QDRANT_URL", 34)]
    assert dict(compose.volumes) == {"redis_data": 40, "qdrant_data": 41}


@pytest.mark.parametrize(
    ("image", "source"),
    [("redis:7-alpine", "redis"), ("docker.io/library/redis:7.2@sha256:abc", "redis"),
     ("redis/redis-stack-server:latest", "redis"), ("bitnami/redis:7.2", "redis"), ("valkey/valkey:8", "redis"),
     ("qdrant/qdrant:v1.12.4", "qdrant"), ("registry.example.com:5000/qdrant/qdrant", "qdrant"),
     ("oliver006/redis_exporter:latest", None), ("rediscommander/redis-commander", None),
     ("redis/redisinsight:latest", None), ("postgres:16", None)],
)
def test_which_images_hold_data(image: str, source: str | None) -> None:
    found_image = data_image(image, "svc")
    assert (found_image.source if found_image else None) == source


def test_bitnami_keeps_its_data_elsewhere() -> None:
    image = data_image("bitnami/redis:7.2", "cache")
    assert image is not None and image.data_dir == "/bitnami/redis/data"


def test_the_clean_stack_has_no_compose_findings(tmp_path: Path) -> None:
    for name in ("docker-compose.yml", "redis.conf"):
        shutil.copy(DATA / "clean" / name, tmp_path / name)
    report = run_lint(LintOptions(), cwd=tmp_path)
    assert found(report) == []


def test_no_volume_is_an_error_at_the_service(tmp_path: Path) -> None:
    report = lint(tmp_path, "services:\n  cache:\n    image: redis:7\n    restart: always\n")
    assert found(report) == [("BDR-C001", 2)]
    finding = report.findings[0]
    assert finding.severity == "error"
    assert "/data" in finding.message and "anonymous VOLUME" in finding.message
    assert "redis_data:/data" not in finding.fix and "cache_data:/data" in finding.fix


@pytest.mark.parametrize(
    ("volumes", "rule"),
    [
        ("      - ./data:/data\n", "BDR-C002"),
        ("      - /srv/redis:/data\n", "BDR-C002"),
        ("      - /data\n", "BDR-C003"),
        ("      - type: tmpfs\n        target: /data\n", "BDR-C005"),
        ("      - undeclared:/data\n", "BDR-C004"),
    ],
)
def test_mount_kinds(tmp_path: Path, volumes: str, rule: str) -> None:
    compose = f"services:\n  redis:\n    image: redis:7\n    restart: always\n    volumes:\n{volumes}"
    report = lint(tmp_path, compose)
    assert found(report) == [(rule, 6)]


def test_a_named_volume_on_tmpfs_is_memory(tmp_path: Path) -> None:
    compose = """services:
  redis:
    image: redis:7
    restart: always
    volumes: [redis_data:/data]
volumes:
  redis_data:
    driver: local
    driver_opts: {type: tmpfs, device: tmpfs}
"""
    assert found(lint(tmp_path, compose)) == [("BDR-C005", 5)]


def test_a_mount_of_a_parent_directory_covers_the_data_dir(tmp_path: Path) -> None:
    compose = """services:
  qdrant:
    image: qdrant/qdrant
    restart: unless-stopped
    volumes: [qdrant_all:/qdrant]
volumes: {qdrant_all: {}}
"""
    assert found(lint(tmp_path, compose)) == []


def test_qdrant_storage_path_from_the_environment(tmp_path: Path) -> None:
    compose = """services:
  qdrant:
    image: qdrant/qdrant
    restart: unless-stopped
    environment:
      QDRANT__STORAGE__STORAGE_PATH: /vectors
    volumes: [qdrant_data:/qdrant/storage]
volumes: {qdrant_data: {}}
"""
    report = lint(tmp_path, compose)
    assert found(report) == [("BDR-C001", 2)]
    assert "/vectors" in report.findings[0].message


def test_missing_restart_policy_names_the_restart_rto(tmp_path: Path) -> None:
    compose = "services:\n  redis:\n    image: redis:7\n    volumes: [d:/data]\nvolumes: {d: {}}\n"
    report = lint(tmp_path, compose)
    assert found(report) == [("BDR-C007", 2)]
    assert "target RTO of a Redis restart: 1m" in report.findings[0].impact


def test_a_command_that_overrides_redis_conf(tmp_path: Path) -> None:
    conf = (DATA / "clean" / "redis.conf").read_text()
    compose = """services:
  redis:
    image: redis:7
    restart: always
    command: redis-server /usr/local/etc/redis/redis.conf --appendonly no --save ""
    volumes:
      - redis_data:/data
      - ./redis.conf:/usr/local/etc/redis/redis.conf:ro
volumes: {redis_data: {}}
"""
    report = lint(tmp_path, compose, conf=conf)
    override = [f for f in report.findings if f.rule == "BDR-C006"]
    assert [(f.line) for f in override] == [5]
    assert "--appendonly no" in override[0].message and "appendonly yes (redis.conf:21)" in override[0].message
    # the command line decides the crash window: no persistence at all, and no backup schedule known
    crash = [f for f in report.findings if f.rule == "BDR-R001"]
    assert [(f.path.name, f.line) for f in crash] == [("docker-compose.yml", 5)]
    assert "unbounded" in crash[0].impact or crash[0].facts["window_seconds"] is None


def test_redis_defaults_without_a_config_file(tmp_path: Path) -> None:
    compose = """services:
  redis:
    image: redis:7
    restart: always
    command: ["redis-server", "--save", "3600", "10"]
    volumes: [redis_data:/data]
volumes: {redis_data: {}}
"""
    report = lint(tmp_path, compose)
    crash = [f for f in report.findings if f.rule == "BDR-R001"]
    assert len(crash) == 1 and crash[0].line == 5
    assert "at least 10 changes" in crash[0].impact


def test_a_broken_compose_file_is_a_finding_with_its_line(tmp_path: Path) -> None:
    report = lint(tmp_path, "services:\n  redis:\n    image: redis:7\n   bad: [\n")
    assert [f.rule for f in report.findings] == ["BDR-C000"]
    assert report.findings[0].line == 4


def test_a_redis_service_that_ignores_the_checkouts_redis_conf(tmp_path: Path) -> None:
    conf = (DATA / "clean" / "redis.conf").read_text()
    compose = """services:
  redis:
    image: redis:7
    restart: always
    volumes: [redis_data:/data]
volumes: {redis_data: {}}
"""
    report = lint(tmp_path, compose, conf=conf)
    assert found(report) == [("BDR-C008", 2)]
    # the defaults decide: a single write waits up to an hour for a snapshot (within the default 1h RPO)
    crash = [e for e in report.exposures if e.setup.startswith("service redis")]
    assert {e.seconds for e in crash} == {3600.0}
