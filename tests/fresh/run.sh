#!/usr/bin/env bash
# README's first command on a really fresh machine: a Debian minbase with nothing but python3
# and make (image hotport/pristine:bookworm, from debootstrap, rebuilt only when this script
# changes), run as a Docker-in-Docker host with the flags the project uses. A fresh clone of
# this repository's HEAD goes in, `make demo` runs there as root, and the page must come back
# through the mapping. The only thing handed in besides the clone: this machine's CA bundle,
# under a name of its own, with a pip.conf naming it (pip reaches the index only through it here;
# the container's own bundle is regenerated when ca-certificates installs).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
image=hotport/pristine:bookworm
name=hotport-pristine-$$
recipe=$(sha256sum < "$0" | cut -c1-12)
if [ "$(docker image inspect -f '{{index .Config.Labels "hotport.recipe"}}' "$image" 2>/dev/null)" != "$recipe" ]; then
  . "$root/images/rootfs.sh"
  mirror=$(debian_mirror)
  rootfs=$(mktemp -d /var/tmp/hotport-pristine-XXXXXX)
  echo "building $image (debootstrap bookworm minbase + python3 make)"
  debootstrap --variant=minbase --include=python3,make bookworm "$rootfs" "$mirror" \
    >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; rm -rf "$rootfs"; exit 1; }
  rm -rf "$rootfs.log" "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import -c "LABEL hotport.recipe=$recipe" - "$image" >/dev/null
  rm -rf "$rootfs"
fi
clone=$(mktemp -d /var/tmp/hotport-clone-XXXXXX)
cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$clone"; }
trap cleanup EXIT
git clone -q "$root" "$clone/hotport"
docker run -d --name "$name" --cap-add ALL --cap-drop SYS_RESOURCE \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /var/lib/docker:exec -v "$clone/hotport:/root/hotport" \
  "$image" sleep infinity >/dev/null
docker cp /etc/ssl/certs/ca-certificates.crt "$name:/etc/hotport-ci-ca.crt"
docker exec "$name" sh -c 'printf "[global]\ncert = /etc/hotport-ci-ca.crt\n" > /etc/pip.conf'
start=$(date +%s)
if ! docker exec -w /root/hotport "$name" make demo >"$clone/demo.log" 2>&1; then
  tail -40 "$clone/demo.log" >&2
  echo "FAILED: make demo on a fresh Debian minbase" >&2
  exit 1
fi
page=$(cat "$root/images/target/index.html")
grep -qF "$page" "$clone/demo.log" || { tail -20 "$clone/demo.log" >&2; echo "FAILED: the page did not come back" >&2; exit 1; }
echo "make demo on a fresh Debian minbase: page fetched through the mapping in $(( $(date +%s) - start )) s"

# make demo-clean (issue 29) removes the demo's rules, container and client namespace whatever
# state they are in, and changes nothing once they are gone.
in_pristine() { docker exec -w /root/hotport "$name" "$@"; }
clean() {  # $1: what happened to the demo before
  if ! in_pristine make demo-clean >"$clone/clean.log" 2>&1; then
    tail -40 "$clone/clean.log" >&2; echo "FAILED: make demo-clean ($1)" >&2; exit 1
  fi
  left=$(in_pristine sh -c 'iptables-save; ip6tables-save; docker ps -a --filter name=hotport-demo --format "container {{.Names}}";
                           ip netns list' | grep -E 'hotport|container ' || true)
  [ -z "$left" ] || { echo "FAILED: make demo-clean ($1) left: $left" >&2; exit 1; }
}
recap_changed() { grep -E '^localhost +:' "$clone/clean.log" | sed -E 's/.*changed=([0-9]+).*/\1/'; }
in_pristine scripts/dockerd.sh stop  # the demo container stops; its rules stay
clean "dockerd stopped and started again, demo container exited"
[ "$(recap_changed)" != 0 ] || { echo "FAILED: the first make demo-clean changed nothing" >&2; exit 1; }
clean "nothing left"
[ "$(recap_changed)" = 0 ] || { echo "FAILED: make demo-clean with nothing left changed something" >&2; exit 1; }
in_pristine make demo >"$clone/demo.log" 2>&1 || { tail -40 "$clone/demo.log" >&2; echo "FAILED: make demo again" >&2; exit 1; }
in_pristine docker rm -f hotport-demo >/dev/null
clean "demo container removed by hand"
echo "make demo-clean: nothing left after a dockerd restart or a removed container; a no-op when clean"
