"""Reading ``nft -a list ruleset`` back (pure): rules of hotport's and Docker's tables, and the
elements of hotport's maps and sets as nft wraps them over lines."""
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables import (
    NftElement, NftablesSnapshot, live_mappings, parse_ruleset)

LISTING = """table ip hotport { # handle 7
    map dnat-docker0 { # handle 2
        type inet_proto . inet_service : ipv4_addr . inet_service
        elements = { udp . 53 comment "hotport:abc:udp/53 d3" : 172.17.0.2 . 53,
                 tcp . 8080 comment "hotport:abc:tcp/8080 d1" : 172.17.0.3 . 80 }
    }

    set forward-docker0 { # handle 4
        type ipv4_addr . inet_proto . inet_service . inet_service
        elements = { 172.17.0.3 . tcp . 80 . 8080 comment "hotport:abc:tcp/8080 d4" }
    }

    set empty-one { # handle 5
        type ipv4_addr
        flags interval
    }

    chain nat-mappings { # handle 1
        iifname != "docker0" dnat ip to meta l4proto . th dport map @dnat-docker0 comment "hotport-table docker0 abc" # handle 3
        ip saddr 10.0.0.0/8 tcp dport 9000 dnat to 172.17.0.4:90 comment "hotport:def:tcp/9000 d5" # handle 8
    }
}
table ip docker-bridges { # handle 9
    map filter-forward-in-jumps { # handle 1
        type ifname : verdict
        elements = { "docker0" : jump filter-forward-in__docker0 }
    }

    chain filter-forward-in__docker0 { # handle 2
        meta mark & 0x04000000 == 0x04000000 accept comment "ALLOW FW MARK" # handle 3
    }
}
table ip filter { # handle 10
    set x { # handle 1
        type ipv4_addr
        elements = { 1.2.3.4 }
    }
}
"""


def test_a_set_last_in_hotports_table_does_not_make_dockers_maps_read():
    dockers = "table ip docker-bridges" + LISTING.split("table ip docker-bridges")[1]
    tables = parse_ruleset("table ip hotport {\n    set last {\n        type ipv4_addr\n    }\n}\n" + dockers)
    assert list(tables[(4, "docker-bridges")]) == ["filter-forward-in__docker0"]
    assert tables[(4, "hotport")] == {"last": []}


def test_elements_are_read_across_lines_with_their_tags_and_no_handle():
    tables = parse_ruleset(LISTING)
    assert sorted(tables) == [(4, "docker-bridges"), (4, "hotport")]
    dnat = tables[(4, "hotport")]["dnat-docker0"]
    assert [(element.expr, element.owner_tag) for element in dnat] == [
        ("udp . 53 : 172.17.0.2 . 53", "hotport:abc:udp/53"), ("tcp . 8080 : 172.17.0.3 . 80", "hotport:abc:tcp/8080")]
    assert all(isinstance(element, NftElement) for element in dnat)
    assert dnat[1].delete_command() == "delete element ip hotport dnat-docker0 { tcp . 8080 }"
    assert dnat[1].text() == ('add element ip hotport dnat-docker0 { tcp . 8080 comment "hotport:abc:tcp/8080 d1" '
                              ': 172.17.0.3 . 80 }')
    assert [element.expr for element in tables[(4, "hotport")]["forward-docker0"]] == ["172.17.0.3 . tcp . 80 . 8080"]
    assert tables[(4, "hotport")]["empty-one"] == []  # "flags interval" is no element and no rule
    assert [rule.handle for rule in tables[(4, "hotport")]["nat-mappings"]] == [3, 8]
    # Docker's maps are not read; its rules are.
    assert list(tables[(4, "docker-bridges")]) == ["filter-forward-in__docker0"]


def test_elements_and_rules_claim_and_read_back_as_mappings():
    tables = parse_ruleset(LISTING)
    rules = [rule for rules in tables[(4, "hotport")].values() for rule in rules]
    mappings = live_mappings(rules)
    assert [(tag, mapping.protocol, mapping.host_port, mapping.container_port, mapping.allowed_sources)
            for (dummy, tag), mapping in sorted(mappings.items())] == [
        ("hotport:abc:tcp/8080", "tcp", 8080, 80, ()), ("hotport:abc:udp/53", "udp", 53, 53, ()),
        ("hotport:def:tcp/9000", "tcp", 9000, 90, ("10.0.0.0/8",))]

    claims = NftablesSnapshot(tables, None).claims(4)
    assert sorted((claim.protocol, claim.first, claim.container_ip, claim.container_port, claim.owner_tag)
                  for claim in claims) == [
        ("tcp", 8080, "172.17.0.3", 80, "hotport:abc:tcp/8080"), ("tcp", 9000, "172.17.0.4", 90, "hotport:def:tcp/9000"),
        ("udp", 53, "172.17.0.2", 53, "hotport:abc:udp/53")]
