#!/usr/bin/env bash
# Run the whole test suite: lint, type check, then pytest (unit, integration, faults in two workers; then the drills).
# With arguments: pytest with those arguments, in one process.
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

.venv/bin/ruff check bdr tests bench drills || exit 1
.venv/bin/mypy || exit 1
if [ "$#" -gt 0 ]; then
  # what was asked for, in one process
  .venv/bin/python -m pytest -p no:cacheprovider --junitxml=reports/junit-tests.xml "$@"
  code=$?
else
  # tests/ in BDR_TEST_WORKERS processes (pytest-xdist; each module stays on one worker, with its
  # module fixtures and servers), then the drills in one process: its reporter collects every
  # scenario's result and writes the compliance report.
  .venv/bin/python -m pytest -p no:cacheprovider -n "${BDR_TEST_WORKERS:-2}" --dist loadfile \
    --junitxml=reports/junit-tests.xml tests
  code=$?
  .venv/bin/python -m pytest -p no:cacheprovider --junitxml=reports/junit-drills.xml drills/scenarios
  drills=$?
  [ "$code" = 0 ] && code=$drills
fi
if [ "$code" = 5 ]; then echo "test: no tests were collected" >&2; fi
exit "$code"
