"""Trust, second round (issue 34), in throwaway namespaces: what a read leaves behind, a loopback
mapping against a neighbour on the link, a mapped port held against a local user."""
import pytest

from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import NetfilterError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables import find_docker_iptables

from tests.netns.conftest import Host, Namespace


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
