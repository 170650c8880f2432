"""``bdr show``, ``bdr diff`` and ``bdr find`` on real sets: Redis through the RDB parser and a temporary
redis-server (never production), Qdrant and configuration from their manifests; secrets never shown."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from qdrant_client import QdrantClient

from bdr.runtime.process import RedisProcess
from tests.qdrant_data import load_every_kind

SECRET = "API_TOKEN=tok-" + "9f3c1e7a5b" * 3


def bdr(config: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BDR_KEY", "BDR_PASSPHRASE")}
    if key:
        env["BDR_KEY"] = key
    return subprocess.run([sys.executable, "-m", "bdr.cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=240, check=False, stdin=subprocess.DEVNULL, env=env)


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout) if result.stdout.lstrip().startswith(("{", "[")) else result.stdout


@pytest.fixture
def site(tmp_path: Path, redis_rdb: RedisProcess) -> dict[str, Any]:
    instance = redis_rdb.instance
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "docker-compose.yml").write_text("services:\n  redis: {image: redis:7}\n")
    (conf / ".env").write_text(SECRET + "\n")
    path = tmp_path / "bdr.yaml"
    path.write_text(yaml.safe_dump({
        "repository": str(tmp_path / "repo"),
        "redis": {"production": {"url": instance.url, "data_dir": instance.data_dir,
                                 "start_args": list(instance.start_args), "password_env": None}},
        "qdrant": {"production": {"path": str(tmp_path / "qdrant")}},
        "files": {"root": str(conf), "paths": ["*.yml"], "secrets": [".env"]},
    }))
    return {"config": path, "server": redis_rdb, "conf": conf, "key": secrets.token_hex(32), "tmp": tmp_path}


def load_redis(server: RedisProcess) -> None:
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"user:{i}", f"name {i}")
        pipe.hset(f"session:{i}", mapping={"user": str(i), "seen": "now"})
        if i % 4 == 0:
            pipe.expire(f"session:{i}", 3600)
    pipe.rpush("queue:big", *[f"job-{n}-" + "x" * 200 for n in range(500)])
    pipe.set("plainkey", "no prefix")
    pipe.execute()
    other = server.client(db=2)
    other.set("cache:a", "1")
    other.set("cache:b", "2", ex=600)


def connections(server: RedisProcess) -> int:
    return int(server.client().info("stats")["total_connections_received"])


def test_show_diff_and_find_read_redis_sets_offline(site: dict[str, Any]) -> None:
    config, server = site["config"], site["server"]
    load_redis(server)
    first = ok(bdr(config, "--json", "backup", "redis"))["id"]
    client = server.client()
    client.delete("user:0", "user:1")
    client.set("user:new", "fresh")
    client.hset("session:5", "seen", "later")
    second = ok(bdr(config, "--json", "backup", "redis"))["id"]

    before = connections(server)
    shown = ok(bdr(config, "show", "latest", "--source", "redis", "--json", "--top", "3"))
    assert shown["set"]["id"] == second
    dbs = {d["db"]: d for d in shown["content"]["dbs"]}
    db0 = dbs[0]
    assert db0["keys"] == 200 - 2 + 1 + 200 + 1 + 1
    assert db0["types"] == {"hash": 200, "list": 1, "string": 200}
    assert db0["expires"] == 50 and db0["prefix_count"] == 4
    prefixes = {p["prefix"]: p for p in db0["prefixes"]}
    assert list(prefixes) == ["session:", "user:", "(no prefix)"]  # the top 3, by keys
    assert prefixes["session:"]["keys"] == 200 and prefixes["session:"]["with_ttl"] == 50
    assert prefixes["user:"]["with_ttl"] == 0 and prefixes["user:"]["bytes"] > 0
    assert db0["biggest"][0]["key"] == "queue:big" and db0["biggest"][0]["type"] == "list"
    assert len(db0["biggest"]) == 3
    assert dbs[2]["keys"] == 2 and dbs[2]["expires"] == 1
    assert "temporary redis-server" in shown["content"]["how"]
    assert [c["name"] for c in shown["checks"]][:2] == ["manifest digest", "verify"]
    assert shown["copies"] == [{"repository": str(site["tmp"] / "repo"), "location": "local", "id": second,
                                "same": "this set"}]

    quick = ok(bdr(config, "show", first, "--json", "--no-sizes"))
    quick0 = quick["content"]["dbs"][0]
    assert quick0["biggest"] == [] and quick0["prefixes"][0]["with_ttl"] is None and quick0["expires"] == 50

    text = ok(bdr(config, "show", second))
    assert "db 0: 401 keys, 50 with a TTL (12.5%)" in text and "biggest keys: queue:big (list," in text

    diff = ok(bdr(config, "diff", first, second, "--json"))["diff"]
    assert (diff["added"], diff["removed"], diff["changed"], diff["values_compared"]) == (1, 2, 1, True)
    rows = {(r["db"], r["prefix"]): r for r in diff["prefixes"]}
    assert rows[(0, "user:")]["examples"] == {"added": ["user:new"], "removed": ["user:0", "user:1"]}
    assert rows[(0, "session:")]["examples"] == {"changed": ["session:5"]}
    assert ok(bdr(config, "diff", "latest", "-s", "redis", "--json"))["from"]["id"] == first  # the set before

    found = ok(bdr(config, "find", "user:1", "--json"))
    assert [s["id"] for s in found["sets"]] == [first]
    found = ok(bdr(config, "find", "user:*", "--db", "0", "--json"))
    assert [(s["id"], s["matches"]) for s in found["sets"]] == [(second, 199), (first, 200)]  # newest first
    assert connections(server) == before + 1  # this check itself: show, diff and find never connected

    client.set("user:after", "x")
    client.delete("queue:big")
    live = ok(bdr(config, "diff", "latest", "-s", "redis", "live", "--json"))
    assert live["to"] == "live" and live["diff"]["values_compared"] is False
    assert (live["diff"]["added"], live["diff"]["removed"], live["diff"]["changed"]) == (1, 1, None)


def test_show_diff_and_find_for_qdrant_and_configuration(site: dict[str, Any]) -> None:
    config, key, conf = site["config"], site["key"], site["conf"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        client = QdrantClient(path=str(site["tmp"] / "qdrant"))
        load_every_kind(client)
        client.close()
    ok(bdr(config, "backup", "qdrant"))
    ok(bdr(config, "backup", "config", key=key))

    shown = ok(bdr(config, "show", "latest", "-s", "qdrant", "--json"))["content"]
    docs = {c["name"]: c for c in shown["collections"]}["docs"]
    assert docs["points"] == 60 and {v["name"] for v in docs["vectors"]} == {"text", "colbert", "keywords"}
    assert shown["aliases"] == {"docs_current": "docs"}
    assert [s["examples"] for s in ok(bdr(config, "find", "docs*", "--json"))["sets"]] == [
        ["docs", "docs_current (alias of docs)"]]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        client = QdrantClient(path=str(site["tmp"] / "qdrant"))
        client.delete_collection("plain")
        client.close()
    live = ok(bdr(config, "diff", "latest", "-s", "qdrant", "live", "--json"))["diff"]
    assert [c["name"] for c in live["collections_removed"]] == ["plain"]
    assert {c["name"]: c["points_after"] for c in live["collections"]} == {"docs": 60, "sparse_only": 12}

    text = bdr(config, "show", "latest", "-s", "config", key=key)
    listing = ok(bdr(config, "show", "latest", "-s", "config", "--json", key=key))
    for out in (text.stdout + text.stderr, json.dumps(listing)):
        assert "tok-" not in out and hashlib.sha256((SECRET + "\n").encode()).hexdigest() not in out
    files = {f["path"]: f for f in listing["content"]["files"]}
    assert files[".env"]["secret"] is True and files[".env"]["sha256"] is None
    assert "secret (encrypted; never shown)" in text.stdout

    (conf / "docker-compose.yml").write_text("services:\n  redis: {image: redis:7.2}\n")
    (conf / ".env").write_text(SECRET + "2\n")
    (conf / "extra.yml").write_text("x: 1\n")
    changed = ok(bdr(config, "diff", "latest", "-s", "config", "live", "--json", key=key))["diff"]
    assert {f["path"]: f["change"] for f in changed["files"]} == {
        ".env": "changed", "docker-compose.yml": "changed", "extra.yml": "added"}
    blind = ok(bdr(config, "diff", "latest", "-s", "config", "live", "--json"))["diff"]  # no key: sizes only
    assert {f["path"]: f["change"] for f in blind["files"]}[".env"] == "changed"
    assert [s["examples"] for s in ok(bdr(config, "find", "*.env", "--json"))["sets"]] == [[".env (secret)"]]


def test_an_encrypted_set_without_its_key_is_exit_8(site: dict[str, Any]) -> None:
    config, server = site["config"], site["server"]
    server.client().set("k", "v")
    made = ok(bdr(config, "--json", "backup", "redis", "--encrypt", key=site["key"]))
    refused = bdr(config, "show", made["id"])
    assert refused.returncode == 8, refused.stderr
    assert refused.stderr.strip().startswith("bdr: error: backup redis-") and "--key-file" in refused.stderr
    assert ok(bdr(config, "show", made["id"], "--json", key=site["key"]))["content"]["keys"] == 1
