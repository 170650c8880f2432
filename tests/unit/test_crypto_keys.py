"""Where keys come from: key files (0600), $BDR_KEY, passphrases; ``bdr key generate|id``; the settings."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bdr.cli.main import cli
from bdr.config import EncryptionSettings, parse_config
from bdr.crypto import Cipher, generate_key_file, load_cipher, parse_key, read_key_file
from bdr.errors import ConfigError, MissingKey, UsageError

KEY = bytes(range(32))
NOTHING = EncryptionSettings(key_file=None, key_env="BDR_TEST_NO_KEY", passphrase_env="BDR_TEST_NO_PASS")


def test_generated_key_file_is_0600_whatever_the_umask_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "bdr" / "backup.key"
    old_umask = os.umask(0)
    try:
        key_id, kept = generate_key_file(path)
    finally:
        os.umask(old_umask)
    assert kept is None and path.stat().st_mode & 0o777 == 0o600
    assert len(path.read_text().strip()) == 64
    assert Cipher.from_key(read_key_file(path)).key_id == key_id
    assert [p.name for p in path.parent.iterdir()] == ["backup.key"]  # no temporary file left
    with pytest.raises(UsageError, match="already exists; pass --force"):
        generate_key_file(path)
    assert Cipher.from_key(read_key_file(path)).key_id == key_id


def test_force_keeps_the_old_key_so_old_sets_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    old_id, _ = generate_key_file(path)
    sealed = Cipher.from_key(read_key_file(path)).seal(b"made with the old key")
    new_id, kept = generate_key_file(path, force=True)
    assert new_id != old_id and kept == tmp_path / f"backup.key.{old_id}.old"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert Cipher.from_key(read_key_file(kept)).open(sealed) == b"made with the old key"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "backup.key"
    generate_key_file(path)
    path.chmod(mode)
    with pytest.raises(ConfigError, match=f"chmod 600 {path}"):
        load_cipher(EncryptionSettings(key_file=str(path)))


def test_key_file_forms_and_problems(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    for text in (KEY.hex(), KEY.hex().upper() + "\n", base64.b64encode(KEY).decode() + "\n", f"  {KEY.hex()}  \n"):
        path.write_text(text)
        path.chmod(0o400)
        assert read_key_file(path) == KEY
        path.unlink()
    path.write_text("hunter2\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"not an encryption key.*bdr key generate"):
        read_key_file(path)
    with pytest.raises(MissingKey, match=r"does not exist.*bdr key generate"):
        read_key_file(tmp_path / "missing.key")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_key_file(tmp_path)


def test_key_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured, given = tmp_path / "configured.key", tmp_path / "given.key"
    configured_id, _ = generate_key_file(configured)
    given_id, _ = generate_key_file(given)
    monkeypatch.setenv("BDR_TEST_KEY", KEY.hex())
    monkeypatch.setenv("BDR_TEST_PASS", "a long enough passphrase")
    every = EncryptionSettings(key_file=str(configured), key_env="BDR_TEST_KEY", passphrase_env="BDR_TEST_PASS")

    def key_id(settings: EncryptionSettings, key_file: str | None = None) -> str | None:
        cipher = load_cipher(settings, key_file=key_file)
        return None if cipher is None else cipher.key_id

    assert key_id(every, key_file=str(given)) == given_id
    assert key_id(every) == configured_id
    assert key_id(EncryptionSettings(key_env="BDR_TEST_KEY", passphrase_env="BDR_TEST_PASS")) == \
        Cipher.from_key(KEY).key_id
    by_passphrase = load_cipher(EncryptionSettings(key_env="BDR_TEST_NO_KEY", passphrase_env="BDR_TEST_PASS"))
    assert by_passphrase is not None and by_passphrase.is_passphrase
    assert load_cipher(NOTHING) is None
    with pytest.raises(MissingKey, match=r"bdr key generate .*\$BDR_TEST_NO_KEY / \$BDR_TEST_NO_PASS"):
        load_cipher(NOTHING, required=True)
    monkeypatch.setenv("BDR_TEST_KEY", "not-a-key")
    with pytest.raises(ConfigError, match=r"\$BDR_TEST_KEY.*not an encryption key"):
        load_cipher(EncryptionSettings(key_env="BDR_TEST_KEY"))


def test_a_short_passphrase_is_accepted_with_a_warning_that_does_not_show_it(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("BDR_TEST_PASS", "hunter2")
    with caplog.at_level(logging.WARNING):
        cipher = load_cipher(EncryptionSettings(key_env=None, passphrase_env="BDR_TEST_PASS"))
    assert cipher is not None and "shorter than" in caplog.text and "hunter2" not in caplog.text


def test_parse_key_rejects_wrong_lengths() -> None:
    assert parse_key(KEY.hex(), "x") == KEY
    for bad in (KEY.hex()[:-2], base64.b64encode(KEY[:16]).decode(), "", "zz" * 32):
        with pytest.raises(ConfigError):
            parse_key(bad, "x")


@pytest.mark.parametrize(("section", "message"), [
    ({"encryption": {"key_env": KEY.hex()}}, "must name an environment variable"),
    ({"encryption": {"passphrase_env": "my secret passphrase"}}, "must name an environment variable"),
    ({"encryption": {"key_file": 7}}, "encryption.key_file must be a string, got 7"),
    ({"files": {"paths": "docker-compose.yml"}}, "files.paths must be a list"),
    ({"files": {"paths": ["/etc/nginx/nginx.conf"]}}, "must be relative to files.root"),
    ({"files": {"secrets": ["../secrets/.env"]}}, "must be relative to files.root"),
    ({"files": {"exclude": [3]}}, r"files\.exclude\[0\] must be a string, got 3"),
])
def test_settings_are_checked_when_bdr_yaml_is_loaded(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(section)


def test_key_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BDR_KEY", raising=False)
    monkeypatch.delenv("BDR_PASSPHRASE", raising=False)
    monkeypatch.delenv("BDR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    path = tmp_path / "backup.key"
    made = runner.invoke(cli, ["key", "generate", str(path)])
    assert made.exit_code == 0, made.output
    key_id = Cipher.from_key(read_key_file(path)).key_id
    assert f"key id {key_id}" in made.output and path.read_text().strip() not in made.output
    again = runner.invoke(cli, ["key", "generate", str(path)])
    assert again.exit_code == 2 and "--force" in again.output
    shown = runner.invoke(cli, ["key", "id", "--key-file", str(path)])
    assert shown.exit_code == 0 and shown.output.strip() == key_id
    (tmp_path / "bdr.yaml").write_text(f"encryption:\n  key_file: {path}\n")
    assert runner.invoke(cli, ["key", "id"]).output.strip() == key_id
    as_json = runner.invoke(cli, ["key", "id", "--json"])
    assert f'"key_id": "{key_id}"' in as_json.output and '"source": "key file"' in as_json.output
    (tmp_path / "bdr.yaml").write_text("encryption:\n  key_file: null\n")
    missing = runner.invoke(cli, ["key", "id"])
    assert missing.exit_code == 8 and "bdr key generate" in missing.output
