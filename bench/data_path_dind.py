"""Data path on Docker 29.7.2, per firewall backend (issue 12): the nftables publisher's DNAT next to
the iptables publisher's, each on a Docker-in-Docker host of its own (hotport/dind:sid-29), with
the same paths and methods as bench/data_path.py (whose helpers it uses).

The client is the hotport-client namespace of this machine: its packets reach the DinD host
through this machine's docker0, so they arrive at the DinD host from outside, as a remote
client's do (PREROUTING DNAT, FORWARD to the inner bridge). Paths, per backend:

  direct   client -> the server container's address (routed through the DinD host; dockerd runs
           with allow-direct-routing, and a rule of the benchmark lets it past Docker's drop of
           unpublished ports: an ACCEPT in DOCKER-USER, or, with nftables, Docker's accept mark
           set in a table of the benchmark)
  hotport  client -> DinD host:HOST_PORT, hotport's mapping (apply_request on the host)
  docker   client -> DinD host:HOST_PORT of a twin started with -p (no docker-proxy)

Then the scale run: the hotport path again with N extra mappings of the server installed before
the measured ones (the measured rules last, the worst case for a linear rule walk).

Run as root (make bench-dind); writes docs/bench/data_path_dind.json.
"""
import json
import os
import subprocess
import sys

import data_path as dp
import saved_results
import through_ansible as remote

sys.path.insert(0, os.path.join(dp.ROOT, "scripts"))
import dind_host  # noqa: E402

BACKENDS = os.environ.get("BENCH_BACKENDS", "nftables,iptables").split(",")
HOST = "hp-bench-path"
SUBNET, BRIDGE_IP = "10.213.99.0/24", "10.213.99.1/24"  # the inner docker0, routable from here
DOCKER_PORTS = {dp.IPERF_PORT: 15201, dp.ACCEPT_PORT: 18080}
SERVE = "/bin/iperf3 -s -D && exec /bin/accept-server %d" % dp.ACCEPT_PORT
OUT = os.path.join(dp.ROOT, "docs", "bench", "data_path_dind.json")


def in_host(command):
    return remote.in_host(HOST, command).strip()


def direct_access(backend, server_ip):
    """The benchmark's own rule letting the client reach the server's address directly."""
    if backend == "nftables":
        mark = dind_host.NFTABLES["bridge-accept-fwmark"].split("/", maxsplit=1)[0]
        in_host("nft add table ip hp-bench-direct && nft add chain ip hp-bench-direct forward "
                "'{ type filter hook forward priority -2; }' && nft add rule ip hp-bench-direct forward "
                "ip saddr %s ip daddr %s meta mark set meta mark or %s" % (dp.CLIENT_ADDRESS, server_ip, mark))
    else:
        in_host("iptables -w -I DOCKER-USER -s %s -d %s -j ACCEPT" % (dp.CLIENT_ADDRESS, server_ip))


def publish(extra):
    """Exactly the measured mappings, after ``extra`` others (apply_request on the host) -> seconds."""
    ports = ["%d:9" % (dp.SCALE_FIRST_PORT + index) for index in range(extra)]
    ports += ["%d:%d" % (host_port, port) for port, host_port in dp.HOTPORT_PORTS.items()]
    request = {"container": "server", "ports": ports, "exclusive": True}
    return remote.host_timing(HOST, "inprocess", {"collections": remote.COLLECTIONS, "request": request})["request"]


def backend_run(backend):
    # allow-direct-routing: no "DROP DIRECT ACCESS" of the server's address from outside (Docker 28.2+).
    daemon = dict(dind_host.NFTABLES if backend == "nftables" else {},
                  **{"userland-proxy": False, "bip": BRIDGE_IP, "allow-direct-routing": True})
    version = dind_host.start(HOST, daemon, ["hotport/bench"])
    remote.install_collection(HOST)
    in_host("docker run -d --name server hotport/bench /bin/sh -c '%s'" % SERVE)
    in_host("docker run -d --name twin -p %d:%d -p %d:%d hotport/bench /bin/sh -c '%s'"
            % (DOCKER_PORTS[dp.IPERF_PORT], dp.IPERF_PORT, DOCKER_PORTS[dp.ACCEPT_PORT], dp.ACCEPT_PORT, SERVE))
    server_ip = in_host("docker inspect -f '{{.NetworkSettings.IPAddress}}' server")
    host_ip = dp.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", HOST)
    outer = [["ip", "route", "replace", SUBNET, "via", host_ip],
             ["iptables", "-w", "-I", "DOCKER-USER", "-s", dp.CLIENT_ADDRESS, "-d", host_ip, "-j", "ACCEPT"],
             ["iptables", "-w", "-I", "DOCKER-USER", "-s", dp.CLIENT_ADDRESS, "-d", SUBNET, "-j", "ACCEPT"]]
    try:
        for argv in outer:
            dp.run(argv)
        direct_access(backend, server_ip)
        publish(0)
        subprocess.run(["sleep", "1"], check=True)  # the servers start listening
        # Separate client source ports per path to one server socket (see data_path.py).
        paths = [("direct", dp.in_client, server_ip, {dp.IPERF_PORT: dp.IPERF_PORT, dp.ACCEPT_PORT: dp.ACCEPT_PORT},
                  (10000, 29999)),
                 ("hotport", dp.in_client, host_ip, dp.HOTPORT_PORTS, (30000, 47999)),
                 ("docker", dp.in_client, host_ip, DOCKER_PORTS, (48000, 65000))]
        rows = dp.measure(paths)
        scale = []
        for extra in dp.SCALES:
            installed = publish(extra)
            row = dp.measure([paths[1]], streams_list=(1,))[0]
            row.update(mappings=extra + len(dp.HOTPORT_PORTS), install_s=installed)
            scale.append(row)
    finally:
        subprocess.run(["ip", "route", "del", SUBNET], capture_output=True, check=False)
        for argv in outer[1:]:
            subprocess.run(["iptables", "-w", "-D"] + argv[3:], capture_output=True, check=False)
        dind_host.remove(HOST)
    return {"backend": backend, "engine": version, "paths": rows, "scale": scale}


def main():
    dp.run([dp.CLIENT_NETNS, "up"])
    try:
        results = [backend_run(backend) for backend in BACKENDS]
    finally:
        subprocess.run([dp.CLIENT_NETNS, "down"], check=False)
    results = saved_results.merged(OUT, results, "backend", BACKENDS)  # read before the file is rewritten
    with open(OUT, "w") as out:
        json.dump({"cpus": os.cpu_count(), "kernel": os.uname().release, "repeat": dp.REPEAT,
                   "seconds": dp.SECONDS, "results": results}, out, indent=2)


if __name__ == "__main__":
    main()
