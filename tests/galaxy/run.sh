#!/usr/bin/env bash
# galaxy-importer, the tool Galaxy runs on every upload, on the tarball `ansible-galaxy collection
# build` makes, with its ansible-doc, ansible-lint, flake8 and changelog checks on. It must end
# "Importer processing completed successfully" with no warning and no error. Before that, the tarball
# is installed as a user installs it, and its modules' docs, role docs and playbooks load by name.
#
# Galaxy requires galaxy.yml's `repository`. hotport has no public repository yet and galaxy.yml
# names none rather than a made-up URL; until it does, the importer's only complaint must be that
# field, and every other check runs on a copy of the tarball whose MANIFEST.json names a
# placeholder (the copy is never published).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=$("$root/scripts/venv.sh" "$root/.build/venv-release" "$root/requirements-release.txt")
export PATH=$venv/bin:$PATH
work=${TMPDIR:-/tmp}/hotport-galaxy
rm -rf "$work"
mkdir -p "$work/built" "$work/checked"
fail() { echo "galaxy: FAILED: $*" >&2; exit 1; }

"$root/.build/venv/bin/ansible-galaxy" collection build "$root" --output-path "$work/built" >/dev/null
tarball=$(ls "$work"/built/hotport-docker-*.tar.gz)
stray=$(tar -tzf "$tarball" | cut -d/ -f1 | sort -u \
  | grep -vxE 'CHANGELOG.rst|CONTRIBUTING.md|FILES.json|LICENSE|MANIFEST.json|README.md|changelogs|docs|meta|playbooks|plugins|roles' || true)
[ -z "$stray" ] || fail "the tarball carries what users do not need (add it to build_ignore in galaxy.yml):"$'\n'"$stray"
cat >"$work/galaxy-importer.cfg" <<'CFG'
[galaxy-importer]
RUN_ANSIBLE_DOC = True
RUN_ANSIBLE_LINT = True
RUN_FLAKE8 = True
CHECK_CHANGELOG = True
RUN_ANSIBLE_TEST = False
LOG_LEVEL_MAIN = INFO
CFG
export GALAXY_IMPORTER_CONFIG=$work/galaxy-importer.cfg
import() { (cd "$(dirname "$1")" && python -m galaxy_importer.main "$(basename "$1")" >"$2" 2>&1) || true; }

# As a user installs it: the tarball into an empty collections path (the only one configured, so
# that the clone's own copy cannot stand in for it), then its docs and playbooks by name.
installed=$work/installed
export ANSIBLE_COLLECTIONS_PATH=$installed
"$root/.build/venv/bin/ansible-galaxy" collection install "$tarball" -p "$installed" >/dev/null
[ -f "$installed/ansible_collections/hotport/docker/MANIFEST.json" ] || fail "ansible-galaxy collection install put nothing in $installed"
documented() {  # ansible-doc's JSON for one plugin or role must hold its documentation
  "$root/.build/venv/bin/ansible-doc" -j "$@" 2>/dev/null | python -c 'import json, sys; sys.exit(not any(json.load(sys.stdin).values()))'
}
for name in container_port_map container_port_map_info; do
  documented "hotport.docker.$name" || fail "ansible-doc hotport.docker.$name on the installed tarball"
done
documented -t role hotport.docker.port_map || fail "ansible-doc -t role hotport.docker.port_map on the installed tarball"
mapfile -t playbooks < <(find "$installed/ansible_collections/hotport/docker/playbooks" -maxdepth 1 -name '*.yml' \
  -printf '%f\n' | sed 's/\.yml$//' | sort)
[ "${playbooks[*]}" = "add_mapping remove_mapping report rollout" ] \
  || fail "the tarball's playbooks are ${playbooks[*]}, not add_mapping remove_mapping report rollout"
for playbook in "${playbooks[@]}"; do
  (cd "$work" && "$root/.build/venv/bin/ansible-playbook" --syntax-check -i localhost, "hotport.docker.$playbook" >/dev/null 2>&1) \
    || fail "ansible-playbook hotport.docker.$playbook --syntax-check on the installed tarball"
done
# What an installed collection cannot have: the clone's files next to it.
! grep -n 'playbook_dir }}/\.\.\|role_path }}/\.\./\.\./\.\.' -r "$installed/ansible_collections/hotport/docker/playbooks" \
  || fail "a playbook of the tarball uses files outside the collection"
unset ANSIBLE_COLLECTIONS_PATH

# As README says, in a clone: its ansible.cfg finds the collection in .build, with no
# ANSIBLE_COLLECTIONS_PATH and no collection in the user's home.
in_clone() {  # TOOL ARGS...
  (cd "$root" && env -u ANSIBLE_COLLECTIONS_PATH -u ANSIBLE_CONFIG HOME="$work/home" \
     "$root/.build/venv/bin/$1" "${@:2}" >/dev/null 2>"$work/clone.log") \
    || fail "$* in the clone, as README says: $(tail -3 "$work/clone.log")"
}
in_clone ansible-playbook --syntax-check playbooks/add_mapping.yml
in_clone ansible-doc -t role hotport.docker.port_map

import "$tarball" "$work/built.log"
if grep -q "'repository' is required" "$work/built.log"; then
  echo "galaxy: galaxy.yml names no repository, which Galaxy requires: set it once hotport has a public repository"
  mkdir "$work/unpacked"
  tar -C "$work/unpacked" -xzf "$tarball"
  python - "$work/unpacked/MANIFEST.json" <<'PY'
import json, sys
with open(sys.argv[1]) as handle:
    manifest = json.load(handle)
manifest["collection_info"]["repository"] = "https://example.invalid/hotport-not-published"
with open(sys.argv[1], "w") as handle:
    json.dump(manifest, handle, indent=4)
PY
  tar -C "$work/unpacked" -czf "$work/checked/$(basename "$tarball")" .
  import "$work/checked/$(basename "$tarball")" "$work/checked.log"
  log=$work/checked.log
else
  log=$work/built.log
fi
problems=$(grep -E "^(WARNING|ERROR)|Traceback" "$log" || true)
[ -z "$problems" ] || fail "galaxy-importer on $(basename "$tarball"):"$'\n'"$problems"
grep -q "Importer processing completed successfully" "$log" || fail "galaxy-importer did not complete: $(tail -5 "$log")"
echo "galaxy: galaxy-importer $(pip show galaxy-importer 2>/dev/null | sed -n 's/^Version: //p') accepts $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KB): no warning, no error"
