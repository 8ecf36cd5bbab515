#!/usr/bin/env bash
# Print the path of a python$1 (e.g. 3.7) that runs, from pyenv or PATH (pyenv's shims exist for
# versions that are not active, so each candidate is tried); print nothing and fail if none does.
set -uo pipefail
for candidate in "$HOME"/.pyenv/versions/"$1".*/bin/python"$1" "$(command -v "python$1" || true)"; do
  if [ -n "$candidate" ] && "$candidate" -c '' 2>/dev/null; then echo "$candidate"; exit 0; fi
done
exit 1
