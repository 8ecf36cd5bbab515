#!/usr/bin/env bash
# Make (or refresh, when requirements-release.txt changed) .build/venv-release and print its path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/.build/venv-release
stamp=$venv/.requirements
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$root/requirements-release.txt" "$stamp"; then
  echo "release-venv: creating $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -r "$root/requirements-release.txt"; } \
      >"$venv/install.log" 2>&1; then
    cat "$venv/install.log" >&2
    exit 1
  fi
  cp "$root/requirements-release.txt" "$stamp"
fi
echo "$venv"
