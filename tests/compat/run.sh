#!/usr/bin/env bash
# The floors README declares, checked for real on this host's engine:
# - Python 3.7 on managed hosts: the module_utils unit tests and the namespace suite run under
#   Python 3.7 (hotport needs nothing beyond its standard library there);
# - ansible-core 2.17 (meta/runtime.yml requires_ansible) on the controller: the module maps a
#   port of a running container through `ansible` 2.17 with Python 3.7 as the host's
#   interpreter, the page comes back from the client namespace, a re-run changes nothing, absent
#   closes it;
# - an interpreter below the floor gets a clear error from hotport-reconcile, not a traceback.
# Python 3.7 and 3.6 come from pyenv where the machine has them (this kind of machine does).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/.build
python37=$("$root/scripts/find-python.sh" 3.7 || true)
[ -n "$python37" ] || { echo "compat: FAILED: no Python 3.7 on this machine (pyenv or python3.7)" >&2; exit 1; }
if [ ! -x "$build/py3.7/bin/python" ]; then
  "$python37" -m venv "$build/py3.7"
  "$build/py3.7/bin/pip" install -q pytest
fi
ansible217=$("$root/scripts/ansible-core-venv.sh" 2.17)
echo "compat: unit and namespace suites on $("$build/py3.7/bin/python" -V)"
(cd "$root" && "$build/py3.7/bin/python" -m pytest -q -p no:cacheprovider tests/unit/plugins tests/netns)

echo "compat: the module through ansible-core 2.17 with Python 3.7 on the host"
export ANSIBLE_COLLECTIONS_PATH=$build ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_NOCOLOR=1
name=hotport-compat-$$
port=18399
docker run -d --name "$name" hotport/target >/dev/null
trap 'docker rm -f "$name" >/dev/null; "$root/scripts/client-netns.sh" down' EXIT
"$root/scripts/client-netns.sh" up
map() {
  "$ansible217/bin/ansible" localhost -e "ansible_python_interpreter=$build/py3.7/bin/python" \
    -m hotport.docker.container_port_map -a "container=$name $*"
}
map "ports=$port:80" | grep -q '"changed": true' || { map "ports=$port:80"; exit 1; }
page=$("$root/scripts/client-netns.sh" exec curl -sS -m 3 "http://198.18.0.1:$port/")
[ "$page" = "$(cat "$root/images/target/index.html")" ] || { echo "compat: FAILED: got '$page'" >&2; exit 1; }
map "ports=$port:80" | grep -q '"changed": false' || { echo "compat: FAILED: the re-run changed something" >&2; exit 1; }
map "state=absent" | grep -q '"changed": true' || { echo "compat: FAILED: absent" >&2; exit 1; }
if "$root/scripts/client-netns.sh" exec curl -sS -m 3 "http://198.18.0.1:$port/" >/dev/null 2>&1; then
  echo "compat: FAILED: the port still answers after absent" >&2; exit 1
fi

python36=$("$root/scripts/find-python.sh" 3.6 || true)
if [ -n "$python36" ]; then
  echo "compat: hotport-reconcile on $("$python36" -V 2>&1)"
  out=$(PATH=$(dirname "$python36"):$PATH "$root/roles/port_map/files/hotport-reconcile" apply 2>&1 || true)
  grep -q "needs Python 3.7 or newer" <<<"$out" || { echo "compat: FAILED: $out" >&2; exit 1; }
fi
echo "compat: 3 passed, 0 failed"
