#!/usr/bin/env bash
# Build the demo/target image from Debian's busybox-static: no registry is needed.
# Serves /www on TCP 80 (busybox httpd). Rebuilt only when this folder changes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=${1:-hotport/demo-web}
recipe=$(cat "$here"/* | sha256sum | cut -c1-12)
if [ "$(docker image inspect -f '{{index .Config.Labels "hotport.recipe"}}' "$image" 2>/dev/null)" = "$recipe" ]; then
  exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www"
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$here/index.html" "$root/www/index.html"
tar -C "$root" -c . | docker import \
  -c 'CMD ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]' \
  -c 'EXPOSE 80' -c "LABEL hotport.recipe=$recipe" - "$image" >/dev/null
echo "built $image ($recipe)"
