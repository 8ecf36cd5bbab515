"""Data-path benchmark (run as root: python bench/data_path.py, or make bench): one container port
reached four ways, side by side, then with 10 / 1 000 / 10 000 mappings installed (issue 5).

The server container (image hotport/bench: iperf3 -s on 5201, accept-server on 8080) has no -p.
The client is the hotport-client network namespace (scripts/client-netns.sh), linked to the host
by a veth pair, so its packets arrive the way a remote client's do and cross the bridge:

  direct        client -> container IP, routed by the host (the physical limit: same veth,
                routing and bridge as the mapping, no NAT); a temporary ACCEPT in DOCKER-USER
                for the client's address lets it past Docker's FORWARD policy
  hotport       client -> 198.18.0.1:HOST_PORT, the DNAT mapping hotport applied (reconcile())
  socat         client -> 198.18.0.1:HOST_PORT, a socat sidecar (--network host,
                TCP-LISTEN,fork) that connects on to the container
  sidecar       client -> 198.18.0.1:HOST_PORT, hotport's method: sidecar (a socat container on
                the container's network, published by Docker: Docker's DNAT, then socat)
  docker-proxy  host -> 127.0.0.1:HOST_PORT of a twin container started with -p 127.0.0.1:..,
                through the engine's userland proxy (skipped when the engine runs none)

Bulk throughput: iperf3 -c, 1 and 8 streams. Short connections: a sequential client that connects,
reads the one-line answer and closes, for a few seconds: rate and p50 / p99 latency.
All traffic stays on this machine: the namespace, the host's loopback and our own containers.
Writes docs/bench/data_path.json; plot.py draws it.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".build"))

from ansible_collections.hotport.docker.plugins.module_utils import docker_api  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.runners import ProcessRunner  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.ports import PortMapping  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.apply import reconcile  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.planner import MappingRequest  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import publisher_for  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.publishers.sidecar import SidecarPublisher  # noqa: E402

IMAGE = "hotport/bench"
CLIENT_NETNS = os.path.join(ROOT, "scripts", "client-netns.sh")
HOST_ADDRESS, CLIENT_ADDRESS = "198.18.0.1", "198.18.0.2"
IPERF_PORT, ACCEPT_PORT = 5201, 8080
# host ports: hotport's mapping, the socat sidecar, the docker-proxy twin, the scale run's extra mappings
HOTPORT_PORTS = {IPERF_PORT: 35201, ACCEPT_PORT: 38080}
SOCAT_PORTS = {IPERF_PORT: 25201, ACCEPT_PORT: 28080}
SIDECAR_PORTS = {IPERF_PORT: 55201, ACCEPT_PORT: 58080}  # above the scale run's 40000..49999
PROXY_PORTS = {IPERF_PORT: 15201, ACCEPT_PORT: 18080}
SCALE_FIRST_PORT = 40000
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
CONNECT_SECONDS = float(os.environ.get("BENCH_CONNECT_SECONDS", "3"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
SCALES = [int(n) for n in os.environ.get("BENCH_SCALES", "10,1000,10000").split(",")]
OUT = os.path.join(ROOT, "docs", "bench", "data_path.json")
NAMES = ("hp-bench-server", "hp-bench-proxied", "hp-bench-sidecar")


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, check=True, **kwargs).stdout.strip()


def in_client(argv):
    return [CLIENT_NETNS, "exec"] + argv


def on_host(argv):
    """The host's own network namespace: the command as it is."""
    return argv


def docker(*args):
    return run(["docker"] + list(args))


def connect_loop(host, port, seconds):
    """Sequential short connections for `seconds` -> {rate, p50_ms, p99_ms, errors}."""
    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        if start >= deadline:
            break
        try:
            with socket.create_connection((host, port), timeout=2) as connection:
                while connection.recv(64):
                    pass
            latencies.append(time.perf_counter() - start)
        except OSError:
            errors += 1
    latencies.sort()
    return {"rate": len(latencies) / seconds, "errors": errors,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


def throughput(client, host, port, streams):
    report = json.loads(run(client(["iperf3", "-J", "-c", host, "-p", str(port), "-t", str(SECONDS),
                                    "-P", str(streams)])))
    return report["end"]["sum_received"]["bits_per_second"] / 1e9


def connections(client, host, port):
    return json.loads(run(client([sys.executable, os.path.abspath(__file__), "connect", host, str(port),
                                  str(CONNECT_SECONDS)])))


def measure_once(client, host, ports, streams_list):
    """One round through one path -> {gbps_S: ..., rate, p50_ms, p99_ms, errors}."""
    row = dict(("gbps_%d" % streams, throughput(client, host, ports[IPERF_PORT], streams))
               for streams in streams_list)
    row.update(connections(client, host, ports[ACCEPT_PORT]))
    return row


def measure(paths, streams_list=(1, 8)):
    """REPEAT rounds, each through every path in turn (so that drift of the machine spreads
    over all paths alike) -> one row per path with the medians."""
    runs = dict((name, []) for name, client, host, ports, ranges in paths)
    for dummy in range(REPEAT):
        for name, client, host, ports, ranges in paths:
            client_ports(*ranges)
            runs[name].append(measure_once(client, host, ports, streams_list))
    rows = []
    for name, found in runs.items():
        row = {"path": name}
        for key in found[0]:
            row[key] = sum(run[key] for run in found) if key == "errors" else statistics.median(run[key] for run in found)
        print("%-13s %s" % (name, " ".join("%s=%.3g" % item for item in row.items() if item[0] != "path")),
              flush=True)
        rows.append(row)
    return rows


class Bench:
    """The containers, the client namespace and the rules of one benchmark run; undone on exit."""

    def __enter__(self):
        run([CLIENT_NETNS, "up"])
        serve = "/bin/iperf3 -s -D && exec /bin/accept-server %d" % ACCEPT_PORT
        docker("run", "-d", "--name", NAMES[0], IMAGE, "/bin/sh", "-c", serve)
        publish = []
        for port, host_port in PROXY_PORTS.items():
            publish += ["-p", "127.0.0.1:%d:%d" % (host_port, port)]
        docker("run", "-d", "--name", NAMES[1], *publish, IMAGE, "/bin/sh", "-c", serve)
        self.client = docker_api.connect(None, 30)
        self.engine = docker_api.engine_info(self.client)
        self.endpoint = docker_api.resolve_endpoint(self.client, NAMES[0])
        address = self.endpoint.ip
        forward = " & ".join("/bin/socat TCP-LISTEN:%d,fork,reuseaddr TCP:%s:%d" % (host_port, address, port)
                             for port, host_port in SOCAT_PORTS.items())
        docker("run", "-d", "--name", NAMES[2], "--network", "host", IMAGE, "/bin/sh", "-c", "exec " + forward)
        self.direct_rule = ["DOCKER-USER", "-s", CLIENT_ADDRESS, "-d", address, "-j", "ACCEPT"]
        run(["iptables", "-w", "-I"] + self.direct_rule)
        self.runner = ProcessRunner()
        self.mapped = []
        self.sidecars = [PortMapping("tcp", host_port, port) for port, host_port in SIDECAR_PORTS.items()]
        self.reconcile(self.sidecars, SidecarPublisher(self.client, IMAGE))
        time.sleep(1)  # the servers start listening
        return self

    def map(self, mappings):
        """Install exactly `mappings` for the server container (one reconcile, appended in order)."""
        self.reconcile(mappings, exclusive=True)
        self.mapped = mappings

    def reconcile(self, mappings, publisher=None, **request):
        publisher = publisher or publisher_for(self.runner, self.engine)
        reconcile(self.runner, self.engine, publisher, MappingRequest(self.endpoint, tuple(mappings), **request))

    def __exit__(self, *exc):
        if self.mapped:
            self.reconcile(self.mapped, state="absent")
        self.reconcile(self.sidecars, SidecarPublisher(self.client, IMAGE), state="absent")
        subprocess.run(["iptables", "-w", "-D"] + self.direct_rule, check=False)
        subprocess.run(["docker", "rm", "-f"] + list(NAMES), capture_output=True, check=False)
        subprocess.run([CLIENT_NETNS, "down"], check=False)


def hotport_mappings(extra):
    """`extra` mappings to an unused container port first, then the measured ones: the measured
    rules come last in every chain, the worst case for a linear rule walk."""
    mappings = [PortMapping("tcp", SCALE_FIRST_PORT + index, 9) for index in range(extra)]
    return mappings + [PortMapping("tcp", host_port, port) for port, host_port in HOTPORT_PORTS.items()]


def client_ports(first, last):
    """Source ports of the client from here on."""
    run(in_client(["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=%d %d" % (first, last)]))


def docker_proxy_running():
    return subprocess.run(["pgrep", "-x", "docker-proxy"], capture_output=True, check=False).returncode == 0


def main():
    scale = []
    # The direct and the DNAT path reach the same container socket from the same client address:
    # sharing source ports, a new DNAT connection would collide with the conntrack entry (TIME_WAIT,
    # 2 min) of an earlier direct one with the same reply tuple. Separate ranges keep them apart.
    direct_ports, other_ports = (10000, 32767), (32768, 65000)
    with Bench() as bench:
        bench.map(hotport_mappings(0))
        paths = [("direct", in_client, bench.endpoint.ip, {IPERF_PORT: IPERF_PORT, ACCEPT_PORT: ACCEPT_PORT}, direct_ports),
                 ("hotport", in_client, HOST_ADDRESS, HOTPORT_PORTS, other_ports),
                 ("socat", in_client, HOST_ADDRESS, SOCAT_PORTS, other_ports),
                 ("sidecar", in_client, HOST_ADDRESS, SIDECAR_PORTS, other_ports)]
        if docker_proxy_running():
            paths.append(("docker-proxy", on_host, "127.0.0.1", PROXY_PORTS, other_ports))
        rows = measure(paths)
        for extra in SCALES:
            start = time.perf_counter()
            bench.map(hotport_mappings(extra))
            installed = time.perf_counter() - start
            row = measure([paths[1]], streams_list=(1,))[0]
            row.update(mappings=extra + len(HOTPORT_PORTS), install_s=installed)
            scale.append(row)
        engine = bench.engine
    versions = (("kernel", ["uname", "-r"]), ("iptables", ["iptables", "--version"]),
                ("iperf3", ["sh", "-c", "iperf3 --version | head -1"]))
    facts = dict((name, run(argv)) for name, argv in versions)
    facts.update(cpus=os.cpu_count(), engine=engine.version, seconds=SECONDS, connect_seconds=CONNECT_SECONDS,
                 repeat=REPEAT, paths=rows, scale=scale)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as out:
        json.dump(facts, out, indent=2)


if __name__ == "__main__":
    if sys.argv[1:2] == ["connect"]:
        json.dump(connect_loop(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])), sys.stdout)
    else:
        main()
