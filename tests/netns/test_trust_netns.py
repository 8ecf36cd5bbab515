"""Trust, second round (issue 34), in throwaway namespaces: what a read leaves behind, a loopback
mapping against a neighbour on the link, a mapped port held against a local user."""
import pytest

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import NetfilterError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables import find_docker_iptables

from tests.netns.conftest import HOST_ADDRESS, Host, Namespace, NftHost, endpoint, reconcile_on, wired_to

NFT_ENGINE = EngineInfo("29.7.2", "1.55", "nftables")


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
