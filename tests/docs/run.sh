#!/usr/bin/env bash
# The docsite as docs.ansible.com builds a collection's: antsibull-docs renders the modules' and the
# role's documentation and the guides listed in docs/docsite/extra-docs.yml, Sphinx builds the HTML
# into .build/docsite/build/html. Any warning fails, except intersphinx inventories this machine
# cannot fetch (no Internet) and the labels of Ansible's own docs they would have resolved.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=$("$root/scripts/venv.sh" "$root/.build/venv-release" "$root/requirements-release.txt")
export PATH=$venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$root/.build
fail() { echo "docs: FAILED: $*" >&2; exit 1; }

lint=$(antsibull-docs lint-collection-docs --plugin-docs "$root" 2>&1) || fail "antsibull-docs lint-collection-docs: $lint"
[ -z "$lint" ] || fail "antsibull-docs lint-collection-docs: $lint"

site=$root/.build/docsite
rm -rf "$site"
mkdir -m 700 "$site"
antsibull-docs sphinx-init --use-current --dest-dir "$site" hotport.docker >/dev/null
(cd "$site" && antsibull-docs --config-file antsibull-docs.cfg collection --cleanup everything \
    --use-current --dest-dir rst hotport.docker >antsibull.log 2>&1) || fail "antsibull-docs: $(cat "$site/antsibull.log")"
(cd "$site" && sphinx-build -M html rst build -c . --keep-going >sphinx.log 2>&1) || fail "sphinx-build: $(tail -20 "$site/sphinx.log")"

offline=$(grep -c "WARNING: failed to reach any of the inventories" "$site/sphinx.log" || true)
warnings=$(grep -E "WARNING|ERROR" "$site/sphinx.log" \
  | grep -v "WARNING: failed to reach any of the inventories" \
  | { if [ "$offline" -gt 0 ]; then grep -vE "WARNING: undefined label: '(common_return_values|ansible_configuration_settings|[a-z_]+_module)'"; else cat; fi; } || true)
[ -z "$warnings" ] || fail "Sphinx warned:"$'\n'"$warnings"

html=$site/build/html/collections/hotport/docker
for page in container_port_map_module container_port_map_info_module port_map_role \
    $(sed -n 's/^ *- \(guide_[a-z_]*\)$/docsite\/\1/p' "$root/docs/docsite/extra-docs.yml"); do
  [ -s "$html/$page.html" ] || fail "no page $page.html in $html"
done
echo "docs: built $(find "$html" -name '*.html' | wc -l) pages into $site/build/html (intersphinx offline: $offline inventories skipped)"
