#!/usr/bin/env bash
# scripts/venv.sh DIR REQUIREMENTS: make the virtualenv DIR with REQUIREMENTS installed, again when
# that file changed since (a copy of it is kept in DIR/.requirements), and print DIR.
set -euo pipefail
venv=$1 requirements=$2
stamp=$venv/.requirements
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  echo "venv: creating $venv" >&2
  python3 -m venv "$venv"
  if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -r "$requirements"; } \
      >"$venv/install.log" 2>&1; then
    cat "$venv/install.log" >&2
    exit 1
  fi
  cp "$requirements" "$stamp"
fi
echo "$venv"
