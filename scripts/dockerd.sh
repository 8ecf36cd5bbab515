#!/usr/bin/env bash
# start: make sure a Docker daemon answers; start one (logging to .build/dockerd.log) only if
#        none does, and remember its PID in .build/dockerd.pid.
# stop:  stop the daemon that `start` started, by that PID; leave any other alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pidfile=$root/.build/dockerd.pid
case "${1:-}" in
  start)
    if docker version >/dev/null 2>&1; then exit 0; fi
    mkdir -p "$root/.build"
    dockerd >"$root/.build/dockerd.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 60); do
      docker version >/dev/null 2>&1 && exit 0
      sleep 0.5
    done
    echo "dockerd did not come up; see $root/.build/dockerd.log" >&2
    exit 1
    ;;
  stop)
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile")
    rm -f "$pidfile"
    kill "$pid" 2>/dev/null || exit 0
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
