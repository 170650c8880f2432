#!/usr/bin/env bash
# Set up everything bdr needs on a Debian 12 machine, idempotently:
#   - Debian packages (redis-server, redis-tools, zstd, promtool, chromium, docker.io, python3-venv)
#   - a virtualenv in .venv with bdr and its dev tools, reinstalled when pyproject.toml changes;
#   - bdr's bytecode, compiled ahead (what changed only).
# Safe to run again and again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(redis-server redis-tools zstd prometheus chromium docker.io python3-venv python3-pip git openssl
              ca-certificates iproute2 gcc libc6-dev python3-dev supervisor)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.bdr-installed
# reinstalled when the project's build inputs change (dependencies, the C extension of the RDB digest)
want=$(cat pyproject.toml setup.py bdr/engines/redis/rdb/_digest.c | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
    || ! .venv/bin/python -c "import bdr, bdr.engines.redis.rdb._digest" 2>/dev/null; then
  echo "setup: installing bdr and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
# bytecode for bdr and the drills, written now: where PYTHONDONTWRITEBYTECODE is set (as on the dev machine), Python
# never caches it, and every bdr command would compile the package again (~0.3 s a run); only what changed is
# compiled, and a stale file is recompiled by Python as it loads it, so this is safe to run every time
.venv/bin/python -m compileall -q -j 0 bdr drills > /dev/null
