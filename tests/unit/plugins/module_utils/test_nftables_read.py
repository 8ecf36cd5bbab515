"""Reading nft's JSON listing back (pure): rules of hotport's and Docker's tables, the elements of
hotport's maps and sets, Docker's accept mark, and nft's text of each rule. fixtures/nft-listing.json
is what nft 1.0.6 (`nft -j list ruleset`) printed for this ruleset:

table ip hotport {
    map dnat-docker0 {
        type inet_proto . inet_service : ipv4_addr . inet_service
        elements = { udp . 53 comment "hotport:abc:udp/53 d3" : 172.17.0.2 . 53,
                     tcp . 8080 comment "hotport:abc:tcp/8080 d1" : 172.17.0.3 . 80 }
    }
    set forward-docker0 {
        type ipv4_addr . inet_proto . inet_service . inet_service
        elements = { 172.17.0.3 . tcp . 80 . 8080 comment "hotport:abc:tcp/8080 d4" }
    }
    set empty-one { type ipv4_addr; flags interval; }
    chain nat-mappings {
        iifname != "docker0" dnat ip to meta l4proto . th dport map @dnat-docker0 comment "hotport-table docker0 abc"
        ip saddr 10.0.0.0/8 tcp dport 9000 dnat to 172.17.0.4:90 comment "hotport:def:tcp/9000 d5"
    }
}
table ip docker-bridges {
    map filter-forward-in-jumps { type ifname : verdict; elements = { "docker0" : jump filter-forward-in__docker0 } }
    chain filter-forward-in__docker0 {
        meta mark & 0x04000000 == 0x04000000 accept comment "ALLOW FW MARK"
    }
}
table ip filter { set x { type ipv4_addr; elements = { 1.2.3.4 } } }
"""
import json
import os
import re

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables_render import (
    NftablesLayout, live_mappings, read_listing, statement_text)
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables_rules import (
    DNAT_MAP, FORWARD_SET, AcceptMark, NftablesSnapshot, NftElement, bridge_set_name, is_dnat_map, is_forward_set)

LISTING = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "nft-listing.json")))


def test_hotports_and_dockers_tables_are_read_with_handles_and_tagged_elements():
    tables, mark = read_listing(LISTING)
    assert sorted(tables) == [(4, "docker-bridges"), (4, "hotport")]
    assert mark == AcceptMark(0x4000000, 0x4000000)
    dnat = tables[(4, "hotport")]["dnat-docker0"]
    assert [(element.expr, element.owner_tag) for element in dnat] == [
        ("udp . 53 : 172.17.0.2 . 53", "hotport:abc:udp/53"), ("tcp . 8080 : 172.17.0.3 . 80", "hotport:abc:tcp/8080")]
    assert all(isinstance(element, NftElement) for element in dnat)
    assert dnat[1].delete_command() == "delete element ip hotport dnat-docker0 { tcp . 8080 }"
    assert dnat[1].text() == ('add element ip hotport dnat-docker0 { tcp . 8080 comment "hotport:abc:tcp/8080 d1" '
                              ': 172.17.0.3 . 80 }')
    assert [element.expr for element in tables[(4, "hotport")]["forward-docker0"]] == ["172.17.0.3 . tcp . 80 . 8080"]
    assert tables[(4, "hotport")]["empty-one"] == []
    assert [rule.handle for rule in tables[(4, "hotport")]["nat-mappings"]] == [5, 6]
    # Of Docker's table only its chains, its DNATs and its accept mark are read.
    assert tables[(4, "docker-bridges")] == {"filter-forward-in__docker0": []}


def test_each_rule_reads_back_as_the_text_nft_prints_for_it():
    tables, mark = read_listing(LISTING)
    assert [rule.statement() for rule in tables[(4, "hotport")]["nat-mappings"]] == [
        'iifname != "docker0" dnat ip to meta l4proto . th dport map @dnat-docker0 comment "hotport-table docker0 abc"',
        'ip saddr 10.0.0.0/8 tcp dport 9000 dnat to 172.17.0.4:90 comment "hotport:def:tcp/9000 d5"']
    docker = [item["rule"] for item in LISTING["nftables"] if item.get("rule", {}).get("table") == "docker-bridges"]
    assert statement_text(docker[0]["expr"]) == "meta mark & 0x04000000 == 0x04000000 accept"


def test_elements_and_rules_claim_and_read_back_as_mappings():
    tables, mark = read_listing(LISTING)
    rules = [rule for rules in tables[(4, "hotport")].values() for rule in rules]
    mappings = live_mappings(rules)
    assert [(tag, mapping.protocol, mapping.host_port, mapping.container_port, mapping.allowed_sources)
            for (dummy, tag), mapping in sorted(mappings.items())] == [
        ("hotport:abc:tcp/8080", "tcp", 8080, 80, ()), ("hotport:abc:udp/53", "udp", 53, 53, ()),
        ("hotport:def:tcp/9000", "tcp", 9000, 90, ("10.0.0.0/8",))]
    claims = NftablesSnapshot(tables, NftablesLayout(mark)).claims(4)
    assert sorted((claim.protocol, claim.first, claim.container_ip, claim.container_port, claim.owner_tag)
                  for claim in claims) == [
        ("tcp", 8080, "172.17.0.3", 80, "hotport:abc:tcp/8080"), ("tcp", 9000, "172.17.0.4", 90, "hotport:def:tcp/9000"),
        ("udp", 53, "172.17.0.2", 53, "hotport:abc:udp/53")]


@pytest.mark.parametrize("item", [
    "a string", ["a", "list"], {"rule": "not an object"}, {"rule": {"family": "ip", "table": "hotport"}},
    {"rule": {"family": "inet", "table": "hotport", "chain": "x", "expr": []}},
    {"set": {"family": "ip", "table": "hotport", "name": "s", "elem": ["bare", {"elem": "odd"}, [1, 2, 3]]}},
    {"rule": {"family": "ip", "table": "hotport", "chain": "nat-mappings", "expr": [{"dnat": {"addr": ["x"]}}, 5]}},
    {"table": {"family": "ip", "name": "hotport"}, "extra": 1},
])
def test_a_listing_of_odd_shapes_is_read_without_crashing(item):
    """nft's JSON is an engine answer too: shapes hotport does not expect are skipped or kept opaque."""
    tables, mark = read_listing({"nftables": [item] + LISTING["nftables"]})
    assert mark == AcceptMark(0x4000000, 0x4000000)
    for rules in tables.get((4, "hotport"), {}).values():
        for rule in rules:
            assert rule.translation is None or rule.owner_tag


def test_statements_nft_hotport_never_writes_stay_opaque_but_stable():
    statement = {"counter": {"packets": 0, "bytes": 0}}
    assert statement_text([statement]) == json.dumps(statement, sort_keys=True)


@pytest.mark.parametrize("bridge, dnat", [("docker0", "dnat-docker0"), ("0weird", "dnat-0weird"),
                                          ("br-5e1f0a7c9d2b", "dnat-br-5e1f0a7c9d2b"),
                                          ("wé", "dnath-"), ("a b", "dnath-"), ("x;flush", "dnath-")])
def test_every_bridge_has_a_map_name_nft_takes_and_the_recognisers_know_it(bridge, dnat):
    name, forward = bridge_set_name(DNAT_MAP, bridge), bridge_set_name(FORWARD_SET, bridge)
    assert name.startswith(dnat) and re.match(r"^[A-Za-z][A-Za-z0-9_.-]*$", name) and len(name) < 32
    assert is_dnat_map(name) and not is_forward_set(name) and is_forward_set(forward) and not is_dnat_map(forward)
    assert bridge_set_name(DNAT_MAP, bridge + "2") != name
