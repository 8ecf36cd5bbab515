"""The inventory of published ports: owners, staleness, completeness, clashes (parsed tables)."""
from datetime import datetime, timezone

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import ContainerFacts, Endpoint
from ansible_collections.hotport.docker.plugins.module_utils.inventory import inventory, with_ends
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables import IptablesPublisher
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import IptablesSnapshot
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_render import Layout
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import Rule, parse_save
from ansible_collections.hotport.docker.plugins.module_utils.ports import PortMapping

WEB = Endpoint("a" * 64, "web", "172.17.0.2", "bridge", "docker0")
OTHER = Endpoint("c" * 64, "other", "172.17.0.5", "bridge", "docker0")
EMPTY = "*nat\n:DOCKER - [0:0]\nCOMMIT\n*filter\n:DOCKER - [0:0]\nCOMMIT\n*mangle\nCOMMIT\n"
DOCKER_P = Rule("nat", "DOCKER", ("!", "-i", "docker0", "-p", "tcp", "-m", "tcp", "--dport", "9090",
                                  "-j", "DNAT", "--to-destination", "172.17.0.5:80"))


def over(tables_per_family, layout=Layout()):
    """An iptables publisher and the live state of these parsed tables."""
    return IptablesPublisher(runner=None, engine=None), IptablesSnapshot(
        dict((family, (None, tables)) for family, tables in tables_per_family.items()), layout)


def listing(rules, containers, layout=Layout()):
    tables = parse_save(EMPTY)
    for rule in rules:
        tables[rule.table].chains.setdefault(rule.chain, []).append(rule)
    return inventory(*over({4: tables}, layout), containers)


def ours(port=8080, endpoint=WEB):
    return Layout().render(PortMapping("tcp", port, 80), endpoint)


def facts(endpoint, running=True, at=None):
    moved = Endpoint(endpoint.container_id, endpoint.name, at or endpoint.ip, endpoint.network, endpoint.bridge)
    return ContainerFacts(endpoint.container_id, endpoint.name, running, (moved,) if running else ())


def test_ours_and_dockers_with_their_containers():
    items = listing(ours() + [DOCKER_P], [facts(WEB), facts(OTHER)])
    assert [(i["owner"], i["host_port"], i["container"]["name"], i["stale"], i["complete"]) for i in items] == [
        ("hotport", 8080, "web", False, True), ("docker", 9090, "other", False, True)]
    assert items[0]["tag"] == "hotport:%s:tcp/8080" % ("a" * 12) and items[1]["tag"] == ""


def test_a_missing_rule_makes_the_mapping_incomplete():
    rules = [rule for rule in ours() if rule.table != "filter"]
    [item] = listing(rules, [facts(WEB)])
    assert not item["stale"] and item["complete"] is False


def test_stale_when_the_container_moved_stopped_or_went():
    [moved] = listing(ours(), [facts(WEB, at="172.17.0.9")])
    assert moved["stale"] and moved["stale_reason"] == "address changed (container now at 172.17.0.9 on bridge)"
    [stopped] = listing(ours(), [facts(WEB, running=False)])
    assert stopped["stale_reason"] == "container stopped" and stopped["container"]["name"] == "web"
    [gone] = listing(ours(), [])
    assert gone["stale_reason"] == "container removed" and gone["container"] is None


def test_one_host_port_with_two_owners_is_a_clash():
    docker_8080 = Rule("nat", "DOCKER", DOCKER_P.args[:7] + ("--dport", "8080") + DOCKER_P.args[9:])
    by_owner = dict((item["owner"], item) for item in listing(ours() + [docker_8080], [facts(WEB), facts(OTHER)]))
    assert by_owner["hotport"]["clashes_with"] == ["docker:other"]
    assert by_owner["docker"]["clashes_with"] == ["hotport:%s:tcp/8080" % ("a" * 12)]
    assert listing(ours(), [facts(WEB)])[0]["clashes_with"] == []


def test_ipv6_items_and_clashes_stay_within_their_family():
    web6 = Endpoint(WEB.container_id, "web", "172.17.0.2", "bridge", "docker0", "fd00:aa::2")
    ours6 = Layout().render(PortMapping("tcp", 8080, 80, "::"), web6)
    docker_8080 = Rule("nat", "DOCKER", DOCKER_P.args[:7] + ("--dport", "8080") + DOCKER_P.args[9:])
    docker6_8080 = Rule("nat", "DOCKER", docker_8080.args[:-1] + ("[fd00:aa::5]:80",), family=6)
    v6 = parse_save(EMPTY, 6)
    for rule in ours6:
        v6[rule.table].chains.setdefault(rule.chain, []).append(rule)
    v4 = parse_save(EMPTY)
    v4["nat"].chains["DOCKER"].append(docker_8080)
    containers = [ContainerFacts(web6.container_id, "web", True, (web6,)), facts(OTHER)]
    items = inventory(*over({4: v4, 6: v6}), containers)
    assert [(i["owner"], i["host_ip"], i["container"]["name"], i["complete"], i["clashes_with"]) for i in items] == [
        ("docker", "0.0.0.0", "other", True, []), ("hotport", "::", "web", True, [])]
    v6["nat"].chains["DOCKER"].append(docker6_8080)
    clashing = inventory(*over({4: v4, 6: v6}), containers)
    assert [i["clashes_with"] for i in clashing if i["host_ip"] == "::"] == [
        ["hotport:%s:tcp/8080" % ("a" * 12)], ["docker:fd00:aa::5"]]


def test_rules_left_without_their_dnat_are_listed_as_stale_with_the_reason():
    leftovers = [rule for rule in ours() if not (rule.table == "nat" and rule.chain == "DOCKER")]
    [orphan] = listing(leftovers, [facts(OTHER)])
    assert (orphan["owner"], orphan["protocol"], orphan["host_port"], orphan["stale"], orphan["complete"]) == (
        "hotport", "tcp", 8080, True, False)
    assert orphan["stale_reason"] == "orphaned: container removed, 2 rule(s) left without their DNAT"
    assert orphan["tag"] == "hotport:%s:tcp/8080" % ("a" * 12) and orphan["container"] is None
    [waiting] = listing(leftovers, [facts(WEB)])
    assert waiting["stale_reason"].startswith("incomplete: 2 rule(s) left without their DNAT")
    assert waiting["container"]["name"] == "web"


def test_temporary_mappings_show_their_end_and_the_seconds_left():
    """Issue 37: the info module shows the remaining time of a temporary mapping."""
    now = datetime(2026, 12, 7, 12, 0, 0, tzinfo=timezone.utc)
    entries = [{"container": "db", "ports": ["15432:5432/tcp", {"host_port": 6379, "container_port": 6379,
                                                                "protocol": "tcp", "local_access": True}],
                "expires_at": {"15432:5432/tcp": "2026-12-07T13:00:00Z"}},
               {"container": "web", "ports": ["8080:80/tcp"], "expires_at": "soon"}]

    def item(name, port, owner="hotport", host_ip="0.0.0.0"):
        return {"owner": owner, "method": "kernel", "protocol": "tcp", "host_port": port, "host_ip": host_ip,
                "container": {"name": name, "id": "f" * 64}}

    items = with_ends([item("db", 15432), item("db", 6379), item("web", 8080), item("db", 15432, host_ip="::"),
                       item("db", 15432, owner="docker")], entries, now)
    assert [(one["expires_at"], one["expires_in"]) for one in items] == [
        ("2026-12-07T13:00:00Z", 3600), (None, None), (None, None), (None, None), (None, None)]
