"""Data path on rootless Docker 29.7.2 (issue 26): hotport's kernel method next to Docker's own -p and
the sidecar, on one rootless DinD host (RootlessKit 2.0.2, slirp4netns, builtin port driver; run as
the ordinary user hp, as the Molecule rootless scenario runs it).

The client is the hotport-client namespace of this machine, whose packets reach the DinD host
through this machine's docker0, as a remote client's do. Paths, all through RootlessKit's listener
on the DinD host:

  docker   client -> DinD host:HOST_PORT of a twin started with -p (RootlessKit's port, then
           Docker's rules and docker-proxy in the engine's namespace)
  hotport  client -> DinD host:HOST_PORT, hotport's kernel method (RootlessKit's port, then
           hotport's DNAT in the engine's namespace; apply_request run as hp)
  sidecar  client -> DinD host:HOST_PORT, hotport's method: sidecar (a socat container that Docker
           publishes: RootlessKit, Docker's rules, then socat)

Throughput (iperf3, 1 and 8 streams) and short connections (rate, p50 / p99) as in data_path.py.
Run as root (python bench/data_path_rootless.py); writes docs/bench/data_path_rootless.json.
"""
import json
import os
import subprocess
import sys

import data_path as dp

sys.path.insert(0, os.path.join(dp.ROOT, "scripts"))
import dind_host  # noqa: E402

HOST = "hp-bench-rootless"
LIB = "/opt/hotport"
DOCKER_PORTS = {dp.IPERF_PORT: 15201, dp.ACCEPT_PORT: 18080}
SERVE = "/bin/iperf3 -s -D && exec /bin/accept-server %d" % dp.ACCEPT_PORT
OUT = os.path.join(dp.ROOT, "docs", "bench", "data_path_rootless.json")
APPLY = """
import json, sys
sys.path.insert(0, %r)
from ansible_collections.hotport.docker.plugins.module_utils import docker_api
from ansible_collections.hotport.docker.plugins.module_utils.desired import apply_request
from ansible_collections.hotport.docker.plugins.module_utils.runners import ProcessRunner
client = docker_api.connect(%r, 60)
apply_request(ProcessRunner(), client, docker_api.engine_info(client), json.loads(sys.argv[1]))
""" % (LIB, dind_host.ROOTLESS_SOCKET)


def as_hp(argv, data=None):
    return dp.run(["docker", "exec", "-i", "-u", "hp", "-e", "DOCKER_HOST=" + dind_host.ROOTLESS_SOCKET, HOST]
                  + argv, input=data)


def publish(method, ports):
    request = {"container": "server", "ports": ["%d:%d" % (host_port, port) for port, host_port in ports.items()],
               "method": method, "sidecar_image": dp.IMAGE}
    as_hp(["python3", "-c", APPLY, json.dumps(request)])


def main():
    version = dind_host.start_rootless(HOST, [dp.IMAGE])
    code = subprocess.Popen(["tar", "-C", dp.ROOT, "--exclude", "__pycache__", "-cf", "-", "plugins"],
                            stdout=subprocess.PIPE)
    subprocess.run(["docker", "exec", "-i", HOST, "sh", "-c", "mkdir -p %s/ansible_collections/hotport/docker && "
                    "tar -C %s/ansible_collections/hotport/docker -xf -" % (LIB, LIB)], stdin=code.stdout, check=True)
    code.wait()
    as_hp(["docker", "run", "-d", "--name", "server", dp.IMAGE, "/bin/sh", "-c", SERVE])
    as_hp(["docker", "run", "-d", "--name", "twin", "-p", "%d:%d" % (DOCKER_PORTS[dp.IPERF_PORT], dp.IPERF_PORT),
           "-p", "%d:%d" % (DOCKER_PORTS[dp.ACCEPT_PORT], dp.ACCEPT_PORT), dp.IMAGE, "/bin/sh", "-c", SERVE])
    publish("kernel", dp.HOTPORT_PORTS)
    publish("sidecar", dp.SIDECAR_PORTS)
    host_ip = dp.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", HOST)
    accept = ["DOCKER-USER", "-s", dp.CLIENT_ADDRESS, "-d", host_ip, "-j", "ACCEPT"]
    dp.run([dp.CLIENT_NETNS, "up"])
    dp.run(["iptables", "-w", "-I"] + accept)
    try:
        subprocess.run(["sleep", "1"], check=True)  # the servers and socat start listening
        # Separate client source ports per path to one server socket (see data_path.py).
        rows = dp.measure([("docker", dp.in_client, host_ip, DOCKER_PORTS, (10000, 29999)),
                           ("hotport", dp.in_client, host_ip, dp.HOTPORT_PORTS, (30000, 47999)),
                           ("sidecar", dp.in_client, host_ip, dp.SIDECAR_PORTS, (48000, 65000))])
    finally:
        subprocess.run(["iptables", "-w", "-D"] + accept, capture_output=True, check=False)
        subprocess.run([dp.CLIENT_NETNS, "down"], check=False)
        dind_host.remove(HOST)
    with open(OUT, "w") as out:
        json.dump({"cpus": os.cpu_count(), "kernel": os.uname().release, "engine": version, "repeat": dp.REPEAT,
                   "seconds": dp.SECONDS, "rootlesskit": "2.0.2 (slirp4netns, builtin port driver)",
                   "paths": rows}, out, indent=2)


if __name__ == "__main__":
    main()
