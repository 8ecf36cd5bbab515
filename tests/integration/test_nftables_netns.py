"""The nftables publisher against real nft in throwaway network namespaces holding Docker 29's
nftables tables (rulesets/docker29-nftables.nft): what it writes, re-runs, removal, refusals,
and the atomicity of its one batch. Traffic through these rules is the Molecule engine
scenario's (Docker 29.7.2 with --firewall-backend=nftables)."""
import pytest

from ansible_collections.hotport.docker.plugins.module_utils.apply import publisher_for, reconcile
from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo
from ansible_collections.hotport.docker.plugins.module_utils.inventory import inventory
from ansible_collections.hotport.docker.plugins.module_utils.planner import ConflictError
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import LayoutError, NetfilterError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import Plan
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables import NftRule

from .conftest import endpoint

ENGINE = EngineInfo("29.7.2", "1.55", "nftables")
MARK = "meta mark set meta mark | 0x04000000"


@pytest.fixture
def apply(tmp_path):
    def run(host, ports, ep=None, sources=(), local=False, **kwargs):
        return reconcile(host.runner, ep or endpoint(), kwargs.pop("engine", ENGINE), parse_ports(ports, sources, local),
                         lock_path=str(tmp_path / "lock"), **kwargs)
    return run


def docker_tables(host):
    return host.table("ip", "docker-bridges") + host.table("ip6", "docker-bridges")


def statements(host):
    """hotport's tagged rules as nft prints them, without their comments."""
    return sorted(line.split(' comment "hotport:')[0] for line in host.tagged())


def test_a_mapping_is_written_in_hotports_own_table_and_docker_tables_stay_as_they_were(nft_host, apply):
    docker = docker_tables(nft_host)
    outcome = apply(nft_host, ["8080:80"])
    assert outcome.changed and outcome.engine["publisher"] == "nftables"
    assert outcome.engine["accept_mark"] == "0x4000000/0x4000000"
    assert statements(nft_host) == sorted([
        'iifname != "docker0" tcp dport 8080 dnat to 172.17.0.2:80',
        'ip daddr 172.17.0.2 oifname "docker0" tcp dport 80 ct status dnat ' + MARK])
    ruleset = nft_host.ruleset()
    assert "type nat hook prerouting priority dstnat - 1; policy accept;" in ruleset
    assert "type filter hook forward priority filter - 1; policy accept;" in ruleset
    assert "fib daddr type local jump nat-mappings" in ruleset
    assert docker_tables(nft_host) == docker, "Docker's tables were written to"
    assert outcome.mappings == [dict(host_ip="0.0.0.0", host_port=8080, container_port=80, protocol="tcp",
                                     allowed_sources=[], local_access=False)]


def forward_chain(host):
    """hotport's filter-forward as nft prints it: its rules, in order, without comments."""
    listing = host.run("nft", "list", "chain", "ip", "hotport", "filter-forward").stdout
    return [line.strip().split(" comment ")[0] for line in listing.splitlines()
            if " comment " in line]


def test_packets_of_flows_under_way_leave_filter_forward_first_even_in_an_older_table(nft_host, apply):
    apply(nft_host, ["8080:80", "8081:81"])
    rules = forward_chain(nft_host)
    assert rules[0] == "ct state established,related return" and len(rules) == 3, rules
    # A table written before that rule existed: the mark rules alone. A run puts it back on top.
    handle = nft_host.run("nft", "-a", "list", "chain", "ip", "hotport", "filter-forward").stdout
    handle = [line for line in handle.splitlines() if "established" in line][0].rsplit("# handle ", 1)[1]
    nft_host.run("nft", "delete", "rule", "ip", "hotport", "filter-forward", "handle", handle.strip())
    assert forward_chain(nft_host)[0].startswith("ip daddr 172.17.0.2")
    outcome = apply(nft_host, ["8080:80", "8081:81"])
    assert outcome.changed and outcome.added == [
        'insert rule ip hotport filter-forward ct state established,related return comment "hotport-table"'], outcome.added
    assert forward_chain(nft_host) == rules


def test_a_rerun_changes_nothing_and_absent_leaves_no_hotport_rule(nft_host, apply):
    apply(nft_host, ["8080:80", "5353:53/udp"], sources=["198.18.0.2"], local=True)
    written = nft_host.ruleset()
    again = apply(nft_host, ["8080:80", "5353:53/udp"], sources=["198.18.0.2"], local=True)
    assert not again.changed and not again.added and nft_host.ruleset() == written
    gone = apply(nft_host, [], state="absent")
    assert gone.changed and gone.removed and nft_host.tagged() == []


def test_options_are_rendered_and_read_back(nft_host, apply):
    outcome = apply(nft_host, ["8080:80"], sources=["198.18.0.2", "10.0.0.0/8"], local=True)
    assert statements(nft_host) == sorted([
        'ip saddr 198.18.0.2 tcp dport 8080 dnat to 172.17.0.2:80',
        'ip saddr 10.0.0.0/8 tcp dport 8080 dnat to 172.17.0.2:80',
        'ip daddr 172.17.0.2 oifname "docker0" tcp dport 80 ct status dnat ' + MARK,
        'tcp dport 8080 drop',
        'ip saddr 172.17.0.2 ip daddr 172.17.0.2 tcp dport 80 masquerade',
        'ip daddr 127.0.0.0/8 tcp dport 8080 dnat to 172.17.0.2:80',
        'ip saddr 127.0.0.0/8 ip daddr 172.17.0.2 oifname "docker0" tcp dport 80 masquerade'])
    assert outcome.mappings == [dict(host_ip="0.0.0.0", host_port=8080, container_port=80, protocol="tcp",
                                     allowed_sources=["10.0.0.0/8", "198.18.0.2/32"], local_access=True)]
    assert nft_host.run("sysctl", "-n", "net.ipv4.conf.docker0.route_localnet").stdout.strip() == "1"


def test_ipv6_beside_ipv4_in_one_batch(nft_host, apply):
    outcome = apply(nft_host, ["8080:80", "[::]:8080:80"])
    assert sorted(rule.split(" ")[2] for rule in outcome.added if "hotport:" in rule) == [
        "ip", "ip", "ip6", "ip6"]
    assert 'iifname != "docker0" tcp dport 8080 dnat to [fd00:aa::2]:80' in statements(nft_host)
    assert not apply(nft_host, ["8080:80", "[::]:8080:80"]).changed
    apply(nft_host, ["[::]:8080:80"], state="absent")
    assert [line for line in statements(nft_host) if "fd00" in line] == []
    assert 'iifname != "docker0" tcp dport 8080 dnat to 172.17.0.2:80' in statements(nft_host)


def test_a_moved_container_gets_its_rules_rewritten(nft_host, apply):
    apply(nft_host, ["8080:80"])
    moved = apply(nft_host, ["8080:80"], ep=endpoint(ip="172.17.0.3"))
    assert moved.changed and len(moved.removed) == 2
    assert not [line for line in statements(nft_host) if "172.17.0.2" in line]
    assert 'iifname != "docker0" tcp dport 8080 dnat to 172.17.0.3:80' in statements(nft_host)


def test_dockers_published_ports_and_other_containers_are_refused_with_nothing_changed(nft_host, apply):
    before = nft_host.ruleset()
    with pytest.raises(ConflictError, match=r"9090:80/tcp is already published by Docker .*dnat to 172.17.0.5:80"):
        apply(nft_host, ["9090:80"])
    with pytest.raises(ConflictError, match=r"\[::\]:9090:80/tcp is already published by Docker"):
        apply(nft_host, ["[::]:9090:80"])
    assert nft_host.ruleset() == before
    apply(nft_host, ["8080:80"], ep=endpoint(container_id="beef" * 16, ip="172.17.0.7"))
    taken = nft_host.ruleset()
    with pytest.raises(ConflictError, match="already mapped by hotport to container beefbeefbeef"):
        apply(nft_host, ["8080:80"])
    assert nft_host.ruleset() == taken
    over = apply(nft_host, ["8080:80"], container_exists=lambda container_id: False)
    assert over.warnings and "beefbeefbeef" in over.warnings[0]
    assert not [line for line in nft_host.tagged() if "beefbeefbeef" in line]


def test_without_the_accept_mark_the_refusal_names_the_option_and_nothing_changes(nft_host, apply):
    nft_host.run("nft", "flush", "chain", "ip", "docker-bridges", "filter-forward-in__docker0")
    before = nft_host.ruleset()
    with pytest.raises(LayoutError, match=r'"bridge-accept-fwmark": "0x4000000/0x4000000".*restart dockerd'):
        apply(nft_host, ["8080:80"])
    assert nft_host.ruleset() == before


def test_rootless_is_refused_before_anything_is_read(nft_host, apply):
    with pytest.raises(LayoutError, match="runs rootless"):
        apply(nft_host, ["8080:80"], engine=EngineInfo("29.7.2", "1.55", "nftables", rootless=True))


def test_a_batch_whose_last_command_fails_changes_nothing(nft_host, apply):
    """nft commits a batch whole or not at all: the publisher's one transaction relies on it."""
    apply(nft_host, ["8080:80"])
    before = nft_host.ruleset()
    publisher = publisher_for(nft_host.runner, ENGINE)
    live = publisher.read()
    plan = Plan(delete=publisher.owned(live, 4),
                add=[NftRule(4, "nat-mappings", "tcp dport 9999 dnat to 172.17.0.2:80", "hotport:x:tcp/9999 0"),
                     NftRule(4, "no-such-chain", "tcp dport 9998 accept", "hotport:x:tcp/9998 0")])
    with pytest.raises(NetfilterError, match="nothing was changed"):
        publisher.apply(live, {4: plan})
    assert nft_host.ruleset() == before


def test_the_inventory_lists_dockers_ports_and_hotports(nft_host, apply):
    apply(nft_host, ["8080:80"])
    publisher = publisher_for(nft_host.runner, ENGINE)
    items = inventory(publisher, publisher.read(), containers=[])
    assert [(item["owner"], item["protocol"], item["host_ip"], item["host_port"], item["container_ip"])
            for item in items] == [
        ("hotport", "tcp", "0.0.0.0", 8080, "172.17.0.2"),
        ("docker", "tcp", "0.0.0.0", 9090, "172.17.0.5"),
        ("docker", "tcp", "::", 9090, "fd00:aa::5"),
        ("docker", "tcp", "127.0.0.1", 9091, "172.17.0.5"),
        ("docker", "udp", "0.0.0.0", 9053, "172.17.0.5")]
    assert items[0]["stale_reason"] == "container removed"
