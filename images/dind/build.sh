#!/usr/bin/env bash
# Build the Docker-in-Docker host images (no registry here): a Debian minbase rootfs by
# debootstrap with the suite's own Docker engine, imported with `docker import`.
#   build.sh bullseye  -> hotport/dind:bullseye  (Debian 11: Docker 20.10.5, Python 3.9 and the
#                         OS-packaged Docker SDK 4.1.0, as on many real hosts)
#   build.sh bookworm  -> hotport/dind:bookworm  (Docker 20.10)
#   build.sh trixie    -> hotport/dind:trixie    (Docker 26.1)
#   build.sh sid       -> hotport/dind:sid       (Docker 28.5)
#   build.sh sid-29    -> hotport/dind:sid-29    (Docker 29.7.2 from ../shared/engines, over sid's
#                         docker.io; nftables for its nftables firewall backend; firewalld, started
#                         only when HOTPORT_FIREWALLD=1; rootless Docker's parts and the ordinary
#                         user hp (uid 1000) that runs it in the rootless scenario)
# The image's default command runs dockerd alone. Started with /lib/systemd/systemd as PID 1 it
# boots like a real host (docker.service under systemd); systemd 258+ (sid) refuses to boot on a
# cgroup v1 machine such as these, so there /usr/local/sbin/dind-supervise stands in for it.
# Rebuilt only when this script changes (label hotport.recipe).
set -euo pipefail
suite=$1
image=hotport/dind:$suite
here=$(cd "$(dirname "$0")" && pwd)
recipe=$(sha256sum < "$here/build.sh" | cut -c1-12)
packages=systemd,systemd-sysv,dbus,python3,python3-apt,iptables-persistent,python3-docker,iproute2,iptables,procps,conntrack,ca-certificates,docker.io,curl
engine=""
case "$suite" in
  bullseye|bookworm) ;;
  trixie|sid) packages=$packages,docker-cli ;;
  sid-29)
    packages=$packages,docker-cli,nftables,uidmap,rootlesskit,slirp4netns
    engine="$here/../../../shared/engines/docker-29.7.2"
    if [ ! -d "$engine" ]; then
      echo "build.sh: Docker 29.7.2 (built from moby's tag) is expected in $(cd "$here/../../.." && pwd)/shared/engines/docker-29.7.2:" \
        "put the shared/ folder beside this clone (README, 'Two commands'); the suites on Docker 29.7.2 need it" >&2
      exit 2
    fi
    engine=$(cd "$engine" && pwd)
    recipe=$( (cat "$here/build.sh"; cd "$engine" && sha256sum -- *) | sha256sum | cut -c1-12)  # wherever shared/ is
    ;;
  *) echo "unknown suite $suite" >&2; exit 2 ;;
esac
if [ "$(docker image inspect -f '{{index .Config.Labels "hotport.recipe"}}' "$image" 2>/dev/null)" = "$recipe" ]; then
  exit 0
fi
. "$here/../rootfs.sh"
mirror=$(debian_mirror)
root=$(mktemp -d /var/tmp/hotport-dind-XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "building $image (debootstrap $suite, a few minutes)"
debootstrap --variant=minbase --include="$packages" "${suite%-29}" "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# iptables-persistent's postinst saves the live ruleset of the machine running debootstrap (the
# chroot shares its network namespace) as the image's boot-time ruleset: a host must boot with
# none of the builder's rules (issue 28).
rm -f "$root/etc/iptables/rules.v4" "$root/etc/iptables/rules.v6"
if [ -n "$engine" ]; then
  for binary in dockerd docker-proxy; do
    xz -dc "$engine/$binary.xz" > "$root/usr/sbin/$binary"
    chmod 755 "$root/usr/sbin/$binary"
  done
  install -m 755 "$engine/dockerd-rootless.sh" "$root/usr/local/bin/dockerd-rootless.sh"
  chroot "$root" useradd -m -u 1000 -s /bin/sh hp
  echo "hp:100000:65536" > "$root/etc/subuid"
  echo "hp:100000:65536" > "$root/etc/subgid"
fi
# The archive's sid is a snapshot whose Release file is past its Valid-Until date: apt (the role's
# package step included) refuses it unless told not to check.
case "$suite" in sid*) echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99hotport-snapshot" ;; esac
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# Under systemd, /proc/sys must be writable before dockerd starts (sysctls, route_localnet).
cat > "$root/etc/systemd/system/proc-sys-rw.service" <<'UNIT'
[Unit]
Description=Make /proc/sys writable inside this Docker-in-Docker host
DefaultDependencies=no
Before=docker.service

[Service]
Type=oneshot
ExecStart=/bin/mount -o remount,rw /proc/sys

[Install]
WantedBy=multi-user.target
UNIT
ln -s ../proc-sys-rw.service "$root/etc/systemd/system/multi-user.target.wants/proc-sys-rw.service"
cat > "$root/usr/local/sbin/dind-supervise" <<'INIT'
#!/bin/sh
# PID 1 without systemd: dockerd (with $HOTPORT_DOCKERD_FLAGS), and hotport-reconcile once the
# role installed it, each started again whenever it exits (what docker.service and
# hotport-reconcile.service do). HOTPORT_FIREWALLD=1: the system bus and firewalld first, as
# dockerd asks D-Bus whether firewalld runs only when it starts.
mount -o remount,rw /proc/sys 2>/dev/null
if [ "${HOTPORT_FIREWALLD:-}" = 1 ]; then
  mkdir -p /run/dbus && dbus-daemon --system --fork
  firewalld --nofork >>/var/log/firewalld.log 2>&1 &
  tries=0
  until firewall-cmd --state >/dev/null 2>&1 || [ $tries -ge 60 ]; do sleep 1; tries=$((tries + 1)); done
fi
(while :; do dockerd ${HOTPORT_DOCKERD_FLAGS:-} >>/var/log/dockerd.log 2>&1; sleep 1; done) &
while :; do
  if [ -x /usr/local/sbin/hotport-reconcile ]; then
    /usr/local/sbin/hotport-reconcile watch --interval "${HOTPORT_RECONCILE_INTERVAL:-60}" >>/var/log/hotport-reconcile.log 2>&1
  fi
  sleep 2
done
INIT
chmod 755 "$root/usr/local/sbin/dind-supervise"
# /proc/sys is read-only in a container started through the API; remount it before dockerd.
command='CMD ["sh", "-c", "mount -o remount,rw /proc/sys 2>/dev/null; exec dockerd"]'
if [ "$suite" != sid-29 ]; then
  tar -C "$root" -c . | docker import -c "$command" -c "LABEL hotport.recipe=$recipe" - "$image" >/dev/null
else
  # firewalld needs polkitd, whose set-up fails in debootstrap's chroot but not in a container:
  # it is installed into the imported rootfs, and the result committed under the recipe label.
  tar -C "$root" -c . | docker import - "$image-rootfs" >/dev/null
  builder=$(docker run -d "$image-rootfs" sh -c 'apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends firewalld \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb')
  if [ "$(docker wait "$builder")" != 0 ]; then
    docker logs "$builder" 2>&1 | tail -20 >&2
    docker rm "$builder" >/dev/null
    exit 1
  fi
  docker commit -c "$command" -c "LABEL hotport.recipe=$recipe" "$builder" "$image" >/dev/null
  docker rm "$builder" >/dev/null
  docker rmi "$image-rootfs" >/dev/null
fi
echo "built $image ($recipe)"
