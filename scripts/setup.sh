#!/usr/bin/env bash
# Everything a fresh Debian/Ubuntu machine needs to run the demo and the tests (as root; a bare
# minbase with python3 and make is enough, tests/fresh/run.sh proves it):
# Debian packages (python3-venv and ca-certificates for the virtualenv and pip, git for
# ansible-test, Docker engine, both iptables variants, nft (the nftables publisher's namespace tests), conntrack, busybox for the demo image;
# xz-utils for the Docker 29 engine;
# iperf3, gcc and libc6-dev for the benchmark image) and a virtualenv in .build/venv with
# ansible-core, the Docker SDK (Molecule's docker driver) and pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
packages=(python3-venv ca-certificates git xz-utils docker.io iptables nftables conntrack busybox-static socat curl iproute2 make shellcheck debootstrap iperf3 gcc libc6-dev openssl openssh-client)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$root/scripts/venv.sh" "$root/.build/venv" "$root/requirements-dev.txt" >/dev/null
mkdir -p "$root/.build/ansible_collections/hotport"
ln -sfn "$root" "$root/.build/ansible_collections/hotport/docker"
