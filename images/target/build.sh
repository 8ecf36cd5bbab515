#!/usr/bin/env bash
# Build the target image (the demo's and the tests' container) from this machine's Debian
# packages: busybox-static and socat with the libraries it links. No registry is needed.
# Serves index.html on TCP 80 and UDP 53. Rebuilt only when this folder changes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../rootfs.sh"
image=${1:-hotport/target}
recipe="" root=""  # set by start_image
start_image "$image" "$here"
add_binary "$root" /usr/bin/socat
mkdir -p "$root/www"
cp "$here/index.html" "$root/www/index.html"
cp "$here/serve.sh" "$root/bin/serve"
tar -C "$root" -c . | docker import -c 'CMD ["/bin/serve"]' -c 'EXPOSE 80 53/udp' \
  -c "LABEL hotport.recipe=$recipe" - "$image" >/dev/null
echo "built $image ($recipe)"
