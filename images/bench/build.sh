#!/usr/bin/env bash
# Build the benchmark image (bench/data_path.py): iperf3 with its libraries, socat for the
# sidecar, busybox, and accept-server (a single-threaded accept loop compiled here, so that
# the short-connection rate measures the network path, not a fork per connection).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../rootfs.sh"
image=${1:-hotport/bench}
recipe="" root=""  # set by start_image
start_image "$image" "$here"
add_binary "$root" /usr/bin/iperf3
add_binary "$root" /usr/bin/socat
gcc -O2 -static -Wall -Werror -o "$root/bin/accept-server" "$here/accept_server.c"
tar -C "$root" -c . | docker import -c 'CMD ["/bin/iperf3", "-s"]' -c 'EXPOSE 5201 8080' \
  -c "LABEL hotport.recipe=$recipe" - "$image" >/dev/null
echo "built $image ($recipe)"
