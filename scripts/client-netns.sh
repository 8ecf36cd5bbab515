#!/usr/bin/env bash
# A throwaway "outside client": network namespace hotport-client, linked to the host by a
# veth pair. The host end gets 198.18.0.1/30 (RFC 2544 benchmarking range), the client
# 198.18.0.2. Traffic from the client to 198.18.0.1:HOST_PORT takes the same path as a
# remote client's: PREROUTING DNAT, then FORWARD to the container's bridge.
#   client-netns.sh up | down | exec CMD...
set -euo pipefail
ns=hotport-client
case "${1:-}" in
  up)
    ip netns list | grep -qw "$ns" && exit 0
    ip netns add "$ns"
    ip link add hp-host type veth peer name hp-client
    ip link set hp-client netns "$ns"
    ip addr add 198.18.0.1/30 dev hp-host
    ip link set hp-host up
    ip -n "$ns" addr add 198.18.0.2/30 dev hp-client
    ip -n "$ns" link set hp-client up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via 198.18.0.1
    ;;
  down)
    ip link del hp-host 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    ;;
  exec)
    shift
    exec ip netns exec "$ns" "$@"
    ;;
  *) echo "usage: $0 up|down|exec CMD..." >&2; exit 2 ;;
esac
