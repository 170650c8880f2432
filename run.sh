#!/usr/bin/env bash
# The two commands of the README:
#   bash run.sh demo   set up (Debian packages, .venv), then the main job on embedded defaults:
#                   a backup/restore walk-through and the complete drill suite (HTML report path printed)
#   bash run.sh test   set up and run the whole test suite (what CI runs)
# plus: bash run.sh setup | lint | bench
set -euo pipefail
cd "$(dirname "$0")"
what=${1:-demo}
shift || true
case "$what" in
  setup)
    bash scripts/setup.sh ;;
  demo)
    bash scripts/setup.sh
    .venv/bin/bdr demo
    # The complete drill on embedded defaults: every scenario, the compliance report's path at the end.
    exec .venv/bin/bdr drill "$@" ;;
  test)
    bash scripts/setup.sh
    exec bash scripts/test.sh "$@" ;;
  lint)
    bash scripts/setup.sh
    .venv/bin/ruff check bdr tests bench drills
    .venv/bin/mypy ;;
  bench)
    bash scripts/setup.sh
    for b in bench/*.py; do .venv/bin/python "$b" "$@"; done ;;
  *)
    echo "usage: bash run.sh demo|test|setup|lint|bench" >&2; exit 2 ;;
esac
