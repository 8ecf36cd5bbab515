#!/usr/bin/env bash
# stage.sh NAME COMMAND...: one stage of `make test`: says when it starts and how long it took,
# so that a CI log shows where its time goes and which stage failed.
set -u
name=$1
shift
start=$(date +%s)
echo "==> stage $name: started at $(date -u +%H:%M:%S)"
"$@"
rc=$?
if [ "$rc" -eq 0 ]; then verdict=passed; else verdict="FAILED (exit $rc)"; fi
echo "==> stage $name: $verdict in $(($(date +%s) - start)) s"
exit "$rc"
