#!/usr/bin/env bash
# scripts/ansible-core-venv.sh LINE: make .build/ansible-LINE (ansible-core LINE.* and pytest, on a
# Python that line supports as a controller) unless it is there, and print its path.
# scripts/ansible-core-venv.sh --lines: the lines meta/runtime.yml's requires_ansible admits, up to
# the newest release, oldest first (CI runs ansible-test sanity and units on each).
set -euo pipefail
declare -A CORE_LINES=([2.17]=3.11 [2.18]=3.11 [2.19]=3.11 [2.20]=3.12 [2.21]=3.12)
if [ "${1:-}" = --lines ]; then
  printf '%s\n' "${!CORE_LINES[@]}" | sort -V
  exit 0
fi
line=${1:?usage: $0 LINE|--lines}
python_version=${CORE_LINES[$line]:-}
[ -n "$python_version" ] || { echo "no such ansible-core line '$line' (one of: ${!CORE_LINES[*]})" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/.build/ansible-$line
if ! "$venv/bin/python" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$python_version'.split('.'))))" 2>/dev/null \
    || [ ! -x "$venv/bin/ansible-test" ] || [ ! -x "$venv/bin/pytest" ]; then
  python=$("$root/scripts/find-python.sh" "$python_version" || true)
  [ -n "$python" ] || { echo "ansible-core $line needs Python $python_version (pyenv or python$python_version)" >&2; exit 1; }
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q "ansible-core==$line.*" pytest >&2
fi
echo "$venv"
