#!/usr/bin/env bash
# Build the target image (the demo's and the tests' container) from this machine's Debian
# packages: busybox-static and socat with the libraries it links. No registry is needed.
# Serves index.html on TCP 80 and UDP 53. Rebuilt only when this folder changes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=${1:-hotport/target}
recipe=$(cat "$here"/* | sha256sum | cut -c1-12)
if [ "$(docker image inspect -f '{{index .Config.Labels "hotport.recipe"}}' "$image" 2>/dev/null)" = "$recipe" ]; then
  exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp /usr/bin/socat "$root/bin/socat"
for library in $(ldd /usr/bin/socat | grep -oE '/[^ ]+'); do
  mkdir -p "$root$(dirname "$library")"
  cp -L "$library" "$root$library"
done
cp "$here/index.html" "$root/www/index.html"
cp "$here/serve.sh" "$root/bin/serve"
tar -C "$root" -c . | docker import -c 'CMD ["/bin/serve"]' -c 'EXPOSE 80 53/udp' \
  -c "LABEL hotport.recipe=$recipe" - "$image" >/dev/null
echo "built $image ($recipe)"
