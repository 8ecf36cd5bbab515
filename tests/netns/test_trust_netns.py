"""Trust, second round (issue 34), in throwaway namespaces: what a read leaves behind, a loopback
mapping against a neighbour on the link, a mapped port held against a local user."""
import os
import subprocess
import sys

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.apply import reconcile
from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo
from ansible_collections.hotport.docker.plugins.module_utils.planner import ConflictError, MappingRequest
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import NetfilterError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables import find_docker_iptables
from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import publisher_for

from tests.netns.conftest import (
    ASK, ENGINE, HOST_ADDRESS, Host, Namespace, NftHost, endpoint, reconcile_on, wired_to)

NFT_ENGINE = EngineInfo("29.7.2", "1.55", "nftables")
# Where the collection is importable from (tests/conftest.py links it there).
COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".build")


def legacy_tables(namespace):
    return namespace.run("cat", "/proc/net/ip_tables_names").stdout.split()


def test_looking_for_dockers_chains_creates_no_legacy_nat_table():
    """A read (check mode, the info module) must leave the kernel as it was: naming iptables-legacy's
    nat table creates it."""
    namespace = Namespace(bare=True)
    try:
        assert "nat" not in legacy_tables(namespace)
        with pytest.raises(NetfilterError, match="nat DOCKER chain was not found"):
            find_docker_iptables(namespace.runner)
        assert "nat" not in legacy_tables(namespace)
    finally:
        namespace.close()


def test_dockers_chains_in_iptables_legacy_are_still_found():
    host = Host("legacy", "docker28")
    try:
        assert find_docker_iptables(host.runner)[0].name == "iptables-legacy"
    finally:
        host.close()


def send_to_loopback_over_the_link(outside):
    """What a neighbour on the host's link can do: route 127.0.0.1 to the host (its own loopback
    address given up), so that its packets arrive on eth0 with destination 127.0.0.1."""
    for command in (["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"],
                    ["sysctl", "-qw", "net.ipv4.conf.uplink.route_localnet=1"],
                    ["ip", "addr", "del", "127.0.0.1/8", "dev", "lo"],
                    ["ip", "route", "add", "127.0.0.1/32", "via", HOST_ADDRESS, "dev", "uplink"]):
        outside.run(*command)


@pytest.mark.parametrize("backend", ["iptables-docker28", "nftables"])
def test_a_loopback_mapping_answers_the_host_and_not_a_neighbour_on_the_link(backend, apply, tmp_path):
    """Docker 28+ drops what arrives for a loopback mapping from anywhere but lo: a neighbour can
    send to 127.0.0.1, and the DNAT would forward it to the container."""
    host = Host("nft", "docker28") if backend != "nftables" else NftHost()
    try:
        with wired_to(host) as ask:
            send_to_loopback_over_the_link(ask.outside)
            ports = ["127.0.0.1:8082:80"]
            if backend == "nftables":
                reconcile_on(host.runner, NFT_ENGINE, endpoint(), parse_ports(ports, local_access=True),
                             str(tmp_path / "lock"))
            else:
                apply(host, ports, local=True)
            assert ask("tcp", 8082, where=host, address="127.0.0.1") == "web", "the host itself"
            assert ask("tcp", 8082, address="127.0.0.1") == "closed: timeout", "a neighbour reached the container"
    finally:
        host.close()


NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
HOLD = """
import sys, time
sys.argv[0] = "hotport.docker.plugins.module_utils.reconciler"  # as hotport-reconcile's command line names it
from ansible_collections.hotport.docker.plugins.module_utils.port_holder import PortHolder
holder = PortHolder()
said = holder.keep({(4, "tcp", "", 18080), (4, "udp", "", 18053), (6, "tcp", "", 18080), (4, "tcp", "127.0.0.1", 18081)})
print("held %s" % said, flush=True)
time.sleep(60)
"""
BIND = """
import socket, sys
family, kind, address, port = sys.argv[1:]
s = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET, getattr(socket, kind))
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((address, int(port)))
    if kind == "SOCK_STREAM":
        s.listen()
    print("bound", flush=True)
    import time; time.sleep(60)
except OSError as exc:
    print("refused: %s" % exc.strerror, flush=True)
"""


def started(namespace, argv, as_nobody=False):
    """A process in ``namespace`` (as uid 65534 when asked); its first line of output."""
    process = subprocess.Popen(["ip", "netns", "exec", namespace.name] + (NOBODY if as_nobody else []) + argv,
                               stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=COLLECTIONS))
    return process, process.stdout.readline().strip()


@pytest.fixture
def namespace():
    made = Namespace()
    yield made
    made.close()


def test_a_held_port_is_bound_by_no_one_else_and_answers_nothing(namespace):
    holder, said = started(namespace, [sys.executable, "-c", HOLD])
    others = []
    try:
        assert said == "held []"
        for family, kind, address, port in [("4", "SOCK_STREAM", "0.0.0.0", 18080), ("4", "SOCK_STREAM", HOST_ADDRESS, 18080),
                                            ("6", "SOCK_STREAM", "::", 18080), ("4", "SOCK_DGRAM", "0.0.0.0", 18053),
                                            ("4", "SOCK_STREAM", "127.0.0.1", 18081)]:
            process, answer = started(namespace, ["/usr/bin/python3", "-c", BIND, family, kind, address, str(port)], True)
            others.append(process)
            assert answer == "refused: Address already in use", (family, kind, address, port, answer)
        asked = namespace.run(sys.executable, "-c", ASK, "tcp", "18080", "127.0.0.1").stdout.strip()
        assert asked == "closed: timeout", "the held socket accepted a connection"
    finally:
        for process in others + [holder]:
            process.kill()
            process.wait()
    process, answer = started(namespace, ["/usr/bin/python3", "-c", BIND, "4", "SOCK_STREAM", "0.0.0.0", "18080"], True)
    process.kill()
    process.wait()
    assert answer == "bound", "the port stayed taken after the holder closed it"


def test_the_holders_own_socket_is_no_clash_and_a_users_socket_does_not_win_a_restore(tmp_path):
    """Finding 3: dockerd restarted (its chains flushed), a user bound the mapped port meanwhile;
    restoring the recorded mapping takes the port back and names the user's process."""
    host = Host("nft", "docker28")
    holder = user = None
    try:
        holder, said = started(host, [sys.executable, "-c", HOLD.replace("18080", "8080")])
        assert said.startswith("held")
        outcome = reconcile_on(host.runner, ENGINE, endpoint(), parse_ports(["8080:80"]), str(tmp_path / "lock"))
        assert outcome.changed and outcome.warnings == [], "hotport's own holder counted as a clash"
        holder.kill()
        holder.wait()
        host.restore("*nat\n-F DOCKER\nCOMMIT\n")  # what a dockerd restart leaves
        user, answer = started(host, ["/usr/bin/python3", "-c", BIND, "4", "SOCK_STREAM", "0.0.0.0", "8080"], True)
        assert answer == "bound"
        with pytest.raises(ConflictError, match=r"socket listens on \*:8080/tcp \(held by PID %d \(python3, uid 65534\)"
                           % user.pid):
            reconcile_on(host.runner, ENGINE, endpoint(), parse_ports(["8080:80"]), str(tmp_path / "lock"))
        request = MappingRequest(endpoint(), tuple(parse_ports(["8080:80"])), restoring=True)
        restored = reconcile(host.runner, ENGINE, publisher_for(host.runner, ENGINE), request,
                             lock_path=str(tmp_path / "lock"))
        assert restored.changed and any("DNAT" in rule for rule in restored.added)
        assert restored.warnings and "PID %d (python3, uid 65534)" % user.pid in restored.warnings[0]
    finally:
        for process in (holder, user):
            if process is not None:
                process.kill()
                process.wait()
        host.close()
