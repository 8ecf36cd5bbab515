#!/usr/bin/env bash
# ansible-test on this collection with one ansible-core release line, or all of them, on machines where
# ansible-test cannot download get-pip.py:
#   tests/ansible-test/run.sh LINE|all sanity|units|integration [ansible-test options]
#
# LINE is one of the lines meta/runtime.yml's requires_ansible admits, up to the newest release
# (scripts/ansible-core-venv.sh lists them and makes each one's virtualenv, .build/ansible-LINE, on a
# Python that line supports as a controller; CI runs sanity and units on all of them).
# ansible-test --venv bootstraps pip in each per-test virtualenv by running a cached copy of get-pip.py
# (~/.ansible/test/cache/get_pip_<version>.py) and downloads it only when that file is missing:
# tests/ansible-test/get_pip_shim.py (ensurepip + pip from the package index) goes there, so
# every test runs exactly as upstream defines it. ansible-test needs the collection under
# ansible_collections/<namespace>/<name>, outside any git work tree that ignores it (ansible-test lists
# files with git), so the tracked files are copied to $TMPDIR/hotport-ansible-test-LINE-COMMAND first.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
line=${1:?usage: $0 LINE|all sanity|units|integration [options]}
command=${2:?usage: $0 LINE|all sanity|units|integration [options]}
shift 2
if [ "$line" = all ]; then  # every line, each to the end; fails when any failed
  failed=()
  mapfile -t lines < <("$root/scripts/ansible-core-venv.sh" --lines)
  for each in "${lines[@]}"; do
    "$0" "$each" "$command" "$@" || failed+=("$each")
  done
  [ ${#failed[@]} -eq 0 ] || { echo "ansible-test $command: FAILED on ansible-core ${failed[*]}" >&2; exit 1; }
  echo "ansible-test $command: passed on ansible-core ${lines[*]}"
  exit 0
fi
venv=$("$root/scripts/ansible-core-venv.sh" "$line")
python_version=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pip_version=$("$venv/bin/python" - "$python_version" <<'PY'
import sys
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version=sys.argv[1]))["pip"])
PY
)
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
cp "$root/tests/ansible-test/get_pip_shim.py" "$cache/get_pip_${pip_version//./_}.py"
work=${TMPDIR:-/tmp}/hotport-ansible-test-$line-$command/ansible_collections/hotport/docker
rm -rf "$work"
mkdir -p "$work"
# Tracked and new files as they are in the work tree (a file deleted but not yet committed is left out).
(cd "$root" && git ls-files -co --exclude-standard | while read -r file; do if [ -e "$file" ]; then echo "$file"; fi; done \
  | tar -cT - | tar -C "$work" -x)
cd "$work"
echo "ansible-test $command on $("$venv/bin/ansible" --version | sed -n 1p), Python $python_version"
if [ "$command" = integration ]; then
  # The targets drive this machine's engine and firewall: run on the controller itself.
  exec "$venv/bin/ansible-test" integration --local --color no "$@"
fi
exec "$venv/bin/ansible-test" "$command" --venv --python "$python_version" --color no "$@"
