"""The nftables publisher against real nft in throwaway network namespaces holding Docker 29's
nftables tables (rulesets/docker29-nftables.nft): what it writes, re-runs, removal, refusals,
and the atomicity of its one batch; and traffic from a namespace outside through the mapping to a
namespace on docker0, past Docker's "UNPUBLISHED PORT DROP". The Molecule engine scenario runs the
same against Docker 29.7.2 itself (--firewall-backend=nftables)."""
import json

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo
from ansible_collections.hotport.docker.plugins.module_utils.inventory import inventory
from ansible_collections.hotport.docker.plugins.module_utils.planner import ConflictError
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import LayoutError, NetfilterError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import Plan
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables_rules import NftRule
from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import kernel_publisher

from .conftest import endpoint, reconcile_on, wired_to

ENGINE = EngineInfo("29.7.2", "1.55", "nftables")
MARK = "meta mark set meta mark | 0x04000000"


@pytest.fixture
def apply(tmp_path):
    def run(host, ports, ep=None, sources=(), local=False, **kwargs):
        return reconcile_on(host.runner, kwargs.pop("engine", ENGINE), ep or endpoint(), parse_ports(ports, sources, local),
                            str(tmp_path / "lock"), **kwargs)
    return run


def docker_tables(host):
    return host.table("ip", "docker-bridges") + host.table("ip6", "docker-bridges")


def statements(host):
    """hotport's tagged rules as nft prints them, without their comments (elements are not rules)."""
    return sorted(line.split(' comment "hotport:')[0] for line in host.tagged() if not line.startswith(
        "elements = ") and " . " not in line.split(" comment ")[0])


def _text(value):
    return " . ".join(str(part) for part in value["concat"]) if isinstance(value, dict) else str(value)


def elements(host, family="ip"):
    """hotport's set and map elements as nft's JSON lists them: {name: sorted [(key, value or None,
    owner tag)]}, {} without the table."""
    listing = host.run("nft", "-j", "list", "table", family, "hotport", check=False).stdout
    found = {}
    for item in json.loads(listing or '{"nftables": []}')["nftables"]:
        kind = item.get("map") or item.get("set")
        if not kind:
            continue
        rows = []
        for element in kind.get("elem", []):
            key, value = element if isinstance(element, list) else (element, None)
            rows.append((_text(key["elem"]["val"]), value and _text(value), key["elem"]["comment"].split(" ")[0]))
        found[kind["name"]] = sorted(rows)
    return found


TAG = "hotport:c0ffee0000aa:tcp/8080"


def bridge_rules(host, family="ip"):
    """The rules of hotport's table for docker0 (``hotport-table docker0...``), without comments."""
    return sorted(line.strip().split(" comment ")[0] for line in host.table(family, "hotport").splitlines()
                  if 'comment "hotport-table docker0' in line)


def test_a_mapping_is_written_in_hotports_own_table_and_docker_tables_stay_as_they_were(nft_host, apply):
    docker = docker_tables(nft_host)
    outcome = apply(nft_host, ["8080:80"])
    assert outcome.changed and outcome.engine["publisher"] == "nftables"
    assert outcome.engine["accept_mark"] == "0x4000000/0x4000000"
    # A plain mapping is two elements, looked up by one rule per bridge (and protocol).
    assert statements(nft_host) == []
    assert elements(nft_host) == {"dnat-docker0": [("tcp . 8080", "172.17.0.2 . 80", TAG)],
                                  "forward-docker0": [("172.17.0.2 . tcp . 80 . 8080", None, TAG)]}
    assert bridge_rules(nft_host) == sorted([
        'iifname != "docker0" dnat ip to meta l4proto . th dport map @dnat-docker0',
        'oifname "docker0" ct status dnat ip daddr . meta l4proto . tcp dport . ct original proto-dst '
        '@forward-docker0 ' + MARK])
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
    assert rules[0] == "ct state established,related return" and len(rules) == 2, rules
    # A table written before that rule existed: the mark rules alone. A run puts it back on top.
    handle = nft_host.run("nft", "-a", "list", "chain", "ip", "hotport", "filter-forward").stdout
    handle = [line for line in handle.splitlines() if "established" in line][0].rsplit("# handle ", 1)[1]
    nft_host.run("nft", "delete", "rule", "ip", "hotport", "filter-forward", "handle", handle.strip())
    assert forward_chain(nft_host)[0].startswith('oifname "docker0"')
    outcome = apply(nft_host, ["8080:80", "8081:81"])
    assert outcome.changed and outcome.added == [
        'insert rule ip hotport filter-forward ct state established,related return comment "hotport-table"'], outcome.added
    assert forward_chain(nft_host) == rules


@pytest.mark.parametrize("options", [{}, dict(sources=["198.18.0.2", "2001:db8:2::/64"], local=True)],
                         ids=["plain", "options"])
def test_a_rerun_changes_nothing_and_absent_leaves_no_hotport_rule(nft_host, apply, options):
    apply(nft_host, ["8080:80", "5353:53/udp", "6000:60/sctp", "[::]:8080:80"], **options)
    written = nft_host.ruleset()
    again = apply(nft_host, ["8080:80", "5353:53/udp", "6000:60/sctp", "[::]:8080:80"], **options)
    assert not again.changed and not again.added and nft_host.ruleset() == written
    gone = apply(nft_host, [], state="absent")
    assert gone.changed and gone.removed and nft_host.tagged() == []
    assert not any(elements(nft_host).values()) and not any(elements(nft_host, "ip6").values())


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
    assert elements(nft_host, "ip6")["dnat-docker0"] == [("tcp . 8080", "fd00:aa::2 . 80", TAG)]
    assert not apply(nft_host, ["8080:80", "[::]:8080:80"]).changed
    apply(nft_host, ["[::]:8080:80"], state="absent")
    assert not any(elements(nft_host, "ip6").values())
    assert elements(nft_host)["dnat-docker0"] == [("tcp . 8080", "172.17.0.2 . 80", TAG)]


def test_a_moved_container_gets_its_rules_rewritten(nft_host, apply):
    apply(nft_host, ["8080:80"])
    moved = apply(nft_host, ["8080:80"], ep=endpoint(ip="172.17.0.3"))
    assert moved.changed and len(moved.removed) == 2
    assert elements(nft_host) == {"dnat-docker0": [("tcp . 8080", "172.17.0.3 . 80", TAG)],
                                  "forward-docker0": [("172.17.0.3 . tcp . 80 . 8080", None, TAG)]}


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


def test_a_rootless_engine_is_refused_as_root_before_anything_is_read(nft_host, apply):
    before = nft_host.ruleset()
    with pytest.raises(LayoutError, match="runs rootless, as an ordinary user, and this run is root"):
        apply(nft_host, ["8080:80"], engine=EngineInfo("29.7.2", "1.55", "nftables", rootless=True))
    assert nft_host.ruleset() == before


def test_a_batch_whose_last_command_fails_changes_nothing(nft_host, apply):
    """nft commits a batch whole or not at all: the publisher's one transaction relies on it."""
    apply(nft_host, ["8080:80"])
    before = nft_host.ruleset()
    publisher = kernel_publisher(nft_host.runner, ENGINE)
    live = publisher.read()
    plan = Plan(delete=live.owned(4),
                add=[NftRule(4, "nat-mappings", "tcp dport 9999 dnat to 172.17.0.2:80", "hotport:x:tcp/9999 0"),
                     NftRule(4, "no-such-chain", "tcp dport 9998 accept", "hotport:x:tcp/9998 0")])
    with pytest.raises(NetfilterError, match="nothing was changed"):
        publisher.apply(live, {4: plan})
    assert nft_host.ruleset() == before


def test_the_inventory_lists_dockers_ports_and_hotports(nft_host, apply):
    apply(nft_host, ["8080:80"])
    publisher = kernel_publisher(nft_host.runner, ENGINE)
    items = inventory(publisher, publisher.read(), containers=[])
    assert [(item["owner"], item["protocol"], item["host_ip"], item["host_port"], item["container_ip"])
            for item in items] == [
        ("hotport", "tcp", "0.0.0.0", 8080, "172.17.0.2"),
        ("docker", "tcp", "0.0.0.0", 9090, "172.17.0.5"),
        ("docker", "tcp", "::", 9090, "fd00:aa::5"),
        ("docker", "tcp", "127.0.0.1", 9091, "172.17.0.5"),
        ("docker", "udp", "0.0.0.0", 9053, "172.17.0.5")]
    assert items[0]["stale_reason"] == "container removed"


@pytest.fixture
def wired(nft_host):
    with wired_to(nft_host) as ask:
        yield ask


def test_a_mapping_answers_from_outside_past_dockers_drop_and_from_the_host(nft_host, apply, wired):
    assert wired("tcp", 8080).startswith("closed"), "the port answered before it was mapped"
    apply(nft_host, ["8080:80", "5353:53/udp", "8081:80"])
    assert wired("tcp", 8080) == "web" and wired("tcp", 8081) == "web" and wired("udp", 5353) == "web"
    assert wired("tcp", 8080, where=nft_host) == "web", "the host's own connection to its address"
    assert wired("tcp", 8082).startswith("closed"), "a port no element holds was translated"
    # The mark is what lets the flow past Docker's UNPUBLISHED PORT DROP: without its element, no answer.
    forward = elements(nft_host)["forward-docker0"]
    nft_host.run("nft", "delete", "element", "ip", "hotport", "forward-docker0", "{ %s }" % forward[0][0])
    assert wired("tcp", int(forward[0][0].rsplit(" ", 1)[1])) == "closed: timeout"
    apply(nft_host, ["8080:80", "5353:53/udp", "8081:80"])
    apply(nft_host, ["8081:80"], state="absent")
    assert wired("tcp", 8080) == "web" and wired("tcp", 8081).startswith("closed")


def test_a_moved_container_answers_through_its_rewritten_elements(nft_host, apply, wired):
    apply(nft_host, ["8080:80", "5353:53/udp"])
    assert wired("udp", 5353) == "web" and wired("tcp", 8080) == "web"
    wired.container.run("ip", "addr", "flush", "dev", "uplink")
    wired.container.run("ip", "addr", "add", "172.17.0.3/16", "dev", "uplink")
    wired.container.run("ip", "route", "add", "default", "via", "172.17.0.1")
    assert apply(nft_host, ["8080:80", "5353:53/udp"], ep=endpoint(ip="172.17.0.3")).changed
    assert wired("udp", 5353) == "web" and wired("tcp", 8080) == "web"


def test_a_table_of_rules_per_mapping_becomes_elements_in_one_run(nft_host, apply):
    """A table an older hotport wrote: a DNAT and a mark rule per mapping. A run replaces them."""
    nft_host.run("nft", "-f", "-", data="""
add table ip hotport
add chain ip hotport nat-mappings
add chain ip hotport nat-prerouting { type nat hook prerouting priority -101; policy accept; }
add chain ip hotport filter-forward { type filter hook forward priority -1; policy accept; }
add rule ip hotport nat-prerouting fib daddr type local jump nat-mappings comment "hotport-table"
add rule ip hotport nat-mappings iifname != "docker0" tcp dport 8080 dnat to 172.17.0.2:80 comment "%s 0123456789"
add rule ip hotport filter-forward ip daddr 172.17.0.2 oifname "docker0" tcp dport 80 ct status dnat %s comment "%s 9876543210"
""" % (TAG, MARK, TAG))
    outcome = apply(nft_host, ["8080:80"])
    assert outcome.mappings[0]["host_port"] == 8080 and len(outcome.removed) == 2, outcome.removed
    assert statements(nft_host) == []
    assert elements(nft_host)["dnat-docker0"] == [("tcp . 8080", "172.17.0.2 . 80", TAG)]
    assert not apply(nft_host, ["8080:80"]).changed


def test_a_new_accept_mark_rewrites_the_bridge_rule_once(nft_host, apply):
    apply(nft_host, ["8080:80"])
    docker = nft_host.table("ip", "docker-bridges").replace("0x04000000", "0x08000000")
    nft_host.run("nft", "-f", "-", data="delete table ip docker-bridges\n" + docker)
    outcome = apply(nft_host, ["8080:80"])
    assert outcome.changed and outcome.engine["accept_mark"] == "0x8000000/0x8000000"
    assert [rule for rule in bridge_rules(nft_host) if "meta mark set" in rule] == [
        'oifname "docker0" ct status dnat ip daddr . meta l4proto . tcp dport . ct original proto-dst '
        '@forward-docker0 meta mark set meta mark | 0x08000000']
    assert not apply(nft_host, ["8080:80"]).changed


def test_every_bridge_gets_its_map_whatever_its_name(nft_host, apply):
    apply(nft_host, ["8080:80"], ep=endpoint(bridge="0weird", ip="172.19.0.2"))
    apply(nft_host, ["8081:80"], ep=endpoint(bridge="br-5e1f0a7c9d2b", ip="172.18.0.2"))
    assert statements(nft_host) == []
    found = elements(nft_host)
    assert found["dnat-0weird"] == [("tcp . 8080", "172.19.0.2 . 80", TAG)]
    assert found["dnat-br-5e1f0a7c9d2b"] == [("tcp . 8081", "172.18.0.2 . 80", TAG.replace("8080", "8081"))]
    assert not apply(nft_host, ["8080:80"], ep=endpoint(bridge="0weird", ip="172.19.0.2")).changed


def test_an_accept_mark_narrower_than_its_mask_keeps_the_other_bits_of_the_mark(nft_host, apply, wired):
    """bridge-accept-fwmark 0x1/0xff: the mark is set in the mask's bits alone; bits another tool set
    before hotport (0x100 here) reach the chains after it."""
    docker = nft_host.table("ip", "docker-bridges").replace("meta mark & 0x04000000 == 0x04000000",
                                                            "meta mark & 0x000000ff == 0x00000001")
    nft_host.run("nft", "-f", "-", data="delete table ip docker-bridges\n" + docker + """
table ip other {
    counter both_bits { }
    chain before { type filter hook forward priority filter - 10; meta mark set 0x00000100; }
    chain after { type filter hook forward priority filter + 10; meta mark 0x00000101 counter name both_bits; }
}
""")
    assert apply(nft_host, ["8080:80"]).engine["accept_mark"] == "0x1/0xff"
    assert wired("tcp", 8080) == "web"
    counter = json.loads(nft_host.run("nft", "-j", "list", "counter", "ip", "other", "both_bits").stdout)
    assert [item["counter"]["packets"] for item in counter["nftables"] if "counter" in item][0] > 0
