#!/usr/bin/env bash
# A Docker engine for bdr's container tests and drills, and things put back as they were after.
#
#   scripts/ensure-docker.sh start    install docker.io when missing, start the engine when it is not running
#   scripts/ensure-docker.sh stop     stop the engine again, but only if `start` started it
#   scripts/ensure-docker.sh status   exit 0 when an engine answers, 1 otherwise
#
# `start` records what it did in $BDR_DOCKERD_MARKER (default /tmp/bdr-started-dockerd): "systemd" when it
# ran `systemctl start docker`, "pid <n>" when it started dockerd itself (log in $BDR_DOCKERD_LOG). No marker
# means the engine was already running, and `stop` leaves it alone. `stop` removes the containers and volumes
# labelled bdr.test=1 (leftovers of a killed test run) before it stops an engine it started.
set -euo pipefail

MARKER=${BDR_DOCKERD_MARKER:-/tmp/bdr-started-dockerd}
LOG=${BDR_DOCKERD_LOG:-/tmp/bdr-dockerd.log}
WAIT=${BDR_DOCKERD_WAIT:-30}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
say() { echo "ensure-docker: $*" >&2; }

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

wait_up() {
  local i
  for ((i = 0; i < WAIT * 10; i++)); do
    engine_up && return 0
    sleep 0.1
  done
  return 1
}

has_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

install_docker() {
  if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then return 0; fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "docker is not installed and this is not a Debian/Ubuntu host: install Docker Engine yourself"
    return 1
  fi
  say "installing docker.io"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends docker.io >/dev/null
}

remove_test_leftovers() {
  local ids
  ids=$(docker ps -aq --filter label=bdr.test=1 2>/dev/null || true)
  [ -n "$ids" ] && docker rm -f -v $ids >/dev/null 2>&1 || true
  ids=$(docker volume ls -q --filter label=bdr.test=1 2>/dev/null || true)
  [ -n "$ids" ] && docker volume rm -f $ids >/dev/null 2>&1 || true
}

start() {
  if engine_up; then
    say "engine already running ($(docker version --format '{{.Server.Version}}')); leaving it as it is"
    return 0
  fi
  install_docker
  if has_systemd && as_root systemctl start docker 2>/dev/null && wait_up; then
    echo "systemd" > "$MARKER"
    say "started docker with systemctl"
    return 0
  fi
  say "starting dockerd (log: $LOG)"
  # setsid: the engine outlives this shell; its pid is what `stop` signals, nothing else.
  as_root setsid dockerd >"$LOG" 2>&1 < /dev/null &
  local pid=$!
  if ! wait_up; then
    say "dockerd did not answer within ${WAIT}s; last lines of $LOG:"
    tail -n 15 "$LOG" >&2 || true
    kill -TERM "$pid" 2>/dev/null || true
    return 1
  fi
  # setsid may fork: record the pid of the dockerd that owns the socket when we can find it.
  local owner
  owner=$(cat /var/run/docker.pid 2>/dev/null || echo "$pid")
  echo "pid $owner" > "$MARKER"
  say "dockerd running, pid $owner"
}

stop() {
  if [ ! -f "$MARKER" ]; then
    say "the engine was not started by this script; leaving it running"
    return 0
  fi
  local how pid
  how=$(cut -d' ' -f1 < "$MARKER")
  engine_up && remove_test_leftovers
  if [ "$how" = "systemd" ]; then
    as_root systemctl stop docker docker.socket 2>/dev/null || as_root systemctl stop docker
  else
    pid=$(cut -d' ' -f2 < "$MARKER")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      as_root kill -TERM "$pid"
      for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        say "dockerd $pid did not stop within 20s; sending SIGKILL"
        as_root kill -KILL "$pid" || true
      fi
    fi
  fi
  rm -f "$MARKER"
  say "stopped the engine this script started"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if engine_up; then docker version --format '{{.Server.Version}}'; else exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
