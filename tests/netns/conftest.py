"""Throwaway network namespaces holding a Docker-like ruleset, in iptables-nft or -legacy.

Each test gets its own namespace: real iptables, real kernel, nothing of the host touched.
"""
import contextlib
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.apply import reconcile
from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo, Endpoint
from ansible_collections.hotport.docker.plugins.module_utils.planner import MappingRequest
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import publisher_for
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import strip_save_comments
from ansible_collections.hotport.docker.plugins.module_utils.runners import ProcessRunner

RULESETS = os.path.join(os.path.dirname(__file__), "rulesets")
VARIANTS = ("nft", "legacy")
LAYOUT_RULESETS = ("classic", "docker28", "docker28-noproxy")
ENGINE = EngineInfo("test", "test", "iptables")
HOST_ADDRESS = "198.18.0.1"
HOST_ADDRESS6 = "2001:db8:1::1"


def endpoint(ip="172.17.0.2", container_id="c0ffee0000aa" + "0" * 52, bridge="docker0", ip6="fd00:aa::2"):
    return Endpoint(container_id, "web", ip, "bridge", bridge, ip6)


class Namespace:
    """A throwaway network namespace with what a Docker host has: loopback, an outside address,
    the docker0 bridge (IPv4 and IPv6) and two more bridges; with ``bare``, loopback alone."""

    def __init__(self, bare=False):
        if os.geteuid() != 0 or not shutil.which("ip"):
            # In CI a skip would hide every namespace test behind a green run.
            (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(
                "needs root and iproute2 to create network namespaces")
        self.name = "hp-test-" + uuid.uuid4().hex[:10]
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.runner = ProcessRunner(["ip", "netns", "exec", self.name])
        host = [["link", "add", "eth0", "type", "bridge"],
                ["addr", "add", HOST_ADDRESS + "/30", "dev", "eth0"],
                ["addr", "add", HOST_ADDRESS6 + "/64", "dev", "eth0", "nodad"],
                ["link", "add", "docker0", "type", "bridge"],
                ["addr", "add", "172.17.0.1/16", "dev", "docker0"],
                ["addr", "add", "fd00:aa::1/64", "dev", "docker0", "nodad"],
                # A user-defined network's bridge, and one whose name nft cannot name a map after.
                ["link", "add", "br-5e1f0a7c9d2b", "type", "bridge"],
                ["addr", "add", "172.18.0.1/16", "dev", "br-5e1f0a7c9d2b"],
                ["link", "add", "0weird", "type", "bridge"],
                ["addr", "add", "172.19.0.1/16", "dev", "0weird"]]
        for command in [["link", "set", "lo", "up"]] + ([] if bare else host):
            subprocess.run(["ip", "-n", self.name] + command, check=True)

    def run(self, *argv, **kwargs):
        return subprocess.run(["ip", "netns", "exec", self.name] + list(argv), capture_output=True,
                              text=True, check=kwargs.get("check", True), input=kwargs.get("data"))

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


class Host(Namespace):
    """One namespace holding a Docker-like iptables ruleset: its runner, and iptables-save of the
    whole ruleset. With ``ipv6``, Docker's ip6tables chains too (an engine with ip6tables on)."""

    def __init__(self, variant, ruleset, ipv6=True):
        if not shutil.which("iptables-%s-restore" % variant):
            pytest.fail("iptables-%s is not installed (Debian package iptables)" % variant)
        super().__init__()
        self.variant = variant
        self.ruleset = ruleset
        self.restore(open(os.path.join(RULESETS, ruleset + ".rules")).read(), noflush=False)
        if ipv6:
            self.run("ip6tables-%s-restore" % variant, data=open(os.path.join(RULESETS, ruleset + ".v6.rules")).read())

    def restore(self, text, noflush=True):
        argv = ["iptables-%s-restore" % self.variant] + (["--noflush"] if noflush else [])
        self.run(*argv, data=text)

    def iptables(self, *args):
        return self.run("iptables-" + self.variant, *args)

    def save(self):
        """Every table of both families, as iptables-save and ip6tables-save print them, without
        the timestamp comments."""
        return strip_save_comments(self.run("iptables-%s-save" % self.variant).stdout
                                   + self.run("ip6tables-%s-save" % self.variant).stdout)

    def save6(self):
        return strip_save_comments(self.run("ip6tables-%s-save" % self.variant).stdout)

    def tagged(self):
        return [line for line in self.save().splitlines() if "hotport:" in line]


class NftHost(Namespace):
    """One namespace holding Docker 29's nftables tables (``ruleset``.nft), as its nftables
    firewall backend writes them."""

    def __init__(self, ruleset="docker29-nftables"):
        if not shutil.which("nft"):
            pytest.fail("nft is not installed (Debian package nftables)")
        super().__init__()
        self.run("nft", "-f", os.path.join(RULESETS, ruleset + ".nft"))

    def ruleset(self):
        return self.run("nft", "list", "ruleset").stdout

    def table(self, family, name):
        return self.run("nft", "list", "table", family, name).stdout

    def tagged(self):
        return [line.strip() for line in self.ruleset().splitlines() if "hotport:" in line]


def reconcile_on(runner, engine, ep, mappings, lock_path, state="present", exclusive=False, check_mode=False,
                 container_exists=lambda container_id: True, publisher=None):
    """reconcile() of one request, as desired.apply_request makes it, on ``runner``'s host -> its Outcome."""
    request = MappingRequest(ep, tuple(mappings), state, exclusive, container_exists)
    return reconcile(runner, engine, publisher or publisher_for(runner, engine), request, check_mode, lock_path)


@pytest.fixture
def apply(tmp_path):
    """reconcile() on a namespace's iptables -> its Outcome (the nftables tests have their own)."""
    def run(host, ports, ep=None, sources=(), local=False, **kwargs):
        return reconcile_on(host.runner, kwargs.pop("engine", ENGINE), ep or endpoint(), parse_ports(ports, sources, local),
                            str(tmp_path / "lock"), **kwargs)
    return run


@pytest.fixture(params=[(v, r) for v in VARIANTS for r in LAYOUT_RULESETS],
                ids=lambda p: "%s-%s" % p)
def host(request):
    made = Host(*request.param)
    yield made
    made.close()


@pytest.fixture(params=VARIANTS)
def classic_host(request):
    made = Host(request.param, "classic")
    yield made
    made.close()


@pytest.fixture(params=VARIANTS)
def docker28_host(request):
    made = Host(request.param, "docker28")
    yield made
    made.close()


@pytest.fixture(params=VARIANTS)
def v4_only_host(request):
    made = Host(request.param, "classic", ipv6=False)
    yield made
    made.close()


@pytest.fixture
def nft_host():
    made = NftHost()
    yield made
    made.close()


SERVE = """
import socket, sys, threading
payload = sys.argv[1].encode()
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 80)); tcp.listen()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", 53))
def answer_udp():
    while True:
        data, peer = udp.recvfrom(100)
        udp.sendto(payload, peer)
threading.Thread(target=answer_udp, daemon=True).start()
print("ready", flush=True)
while True:
    connection, peer = tcp.accept()
    connection.sendall(payload)
    connection.close()
"""

ASK = """
import socket, sys
protocol, port = sys.argv[1], int(sys.argv[2])
kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind); s.settimeout(2)
try:
    s.connect((sys.argv[3], port))
    if kind == socket.SOCK_DGRAM:
        s.send(b"?")
    print(s.recv(100).decode())
except socket.timeout:  # its own class before Python 3.10 (the compat suite runs 3.7)
    print("closed: timeout")
except OSError as error:
    print("closed: %s" % type(error).__name__)
"""


def _link(host, inside, ip, bridge, gateway):
    """A veth from namespace ``inside`` (address ``ip``, default route via ``gateway``) into
    ``bridge`` of ``host``."""
    name = "v" + inside.name[-8:]
    subprocess.run(["ip", "-n", host.name, "link", "add", name, "type", "veth", "peer", "name", "uplink",
                    "netns", inside.name], check=True)
    for namespace, command in ((host, ["link", "set", name, "master", bridge, "up"]),
                               (host, ["link", "set", bridge, "up"]),
                               (inside, ["addr", "add", ip, "dev", "uplink"]),
                               (inside, ["link", "set", "uplink", "up"]),
                               (inside, ["route", "add", "default", "via", gateway])):
        subprocess.run(["ip", "-n", namespace.name] + command, check=True)


@contextlib.contextmanager
def wired_to(host):
    """A container on docker0 (172.17.0.2, answering "web" on tcp/80 and udp/53) and a client
    outside (198.18.0.2 on the host's eth0); the host forwards. -> ask(protocol, port, where=outside)."""
    container, outside = Namespace(bare=True), Namespace(bare=True)
    _link(host, container, "172.17.0.2/16", "docker0", "172.17.0.1")
    _link(host, outside, "198.18.0.2/30", "eth0", HOST_ADDRESS)
    host.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    server = subprocess.Popen(["ip", "netns", "exec", container.name, sys.executable, "-c", SERVE, "web"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"

        def ask(protocol, port, where=outside, address=HOST_ADDRESS):
            return where.run(sys.executable, "-c", ASK, protocol, str(port), address).stdout.strip()
        ask.container = container
        ask.outside = outside
        yield ask
    finally:
        server.kill()
        server.wait()
        container.close()
        outside.close()
