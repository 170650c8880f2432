#!/usr/bin/env bash
# Run the whole test suite: lint, type check, then pytest (unit, integration, drills).
# Starts dockerd for the container tests when it is not running, and stops it again after.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p reports
started_docker=0
if [ -f scripts/ensure-docker.sh ]; then
  if bash scripts/ensure-docker.sh start; then
    [ -f /tmp/bdr-started-dockerd ] && started_docker=1
  else
    echo "test: no Docker engine; container tests will skip" >&2
  fi
fi
cleanup() { if [ "$started_docker" = 1 ]; then bash scripts/ensure-docker.sh stop || true; fi; }
trap cleanup EXIT

.venv/bin/ruff check bdr tests bench || exit 1
.venv/bin/mypy || exit 1
export TESTCONTAINERS_RYUK_DISABLED=true
.venv/bin/python -m pytest -p no:cacheprovider --junitxml=reports/junit-tests.xml "$@"
code=$?
if [ "$code" = 5 ]; then echo "test: no tests were collected" >&2; fi
exit "$code"
