#!/usr/bin/env bash
# ansible-test sanity on this collection, on machines where ansible-test cannot download get-pip.py.
#
# ansible-test --venv bootstraps pip in each per-test virtualenv by running a cached copy of
# get-pip.py (~/.ansible/test/cache/get_pip_<version>.py) and downloads it only when that file is
# missing. We put tests/sanity/get_pip_shim.py there (ensurepip + pip from the package index), so
# every sanity test (validate-modules, pylint, pep8, compile, import, yamllint, ansible-doc, ...)
# runs exactly as upstream defines it. ansible-test needs the collection under
# ansible_collections/<namespace>/<name>, outside any git work tree that ignores it (ansible-test lists
# files with git), so the tracked files are copied to $TMPDIR/hotport-sanity first.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-$root/.build/venv/bin/python}
pip_version=$("$python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="3.11"))["pip"])
PY
)
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
cp "$root/tests/sanity/get_pip_shim.py" "$cache/get_pip_${pip_version//./_}.py"
work=${TMPDIR:-/tmp}/hotport-sanity/ansible_collections/hotport/docker
rm -rf "$work"
mkdir -p "$work"
(cd "$root" && git ls-files -co --exclude-standard | tar -cT - | tar -C "$work" -x)
cd "$work"
py_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$(dirname "$python")/ansible-test" sanity --venv --python "$py_version" --color no "$@"
