"""The planner over the iptables publisher, and the restore text, on parsed tables (no iptables needed)."""
import pytest

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import Endpoint
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_render import Layout
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import Plan, Rule, parse_save
from ansible_collections.hotport.docker.plugins.module_utils.ports import PortMapping, parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.apply import current_mappings
from ansible_collections.hotport.docker.plugins.module_utils.planner import ConflictError, MappingRequest, plan_family
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables import IptablesPublisher
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import IptablesSnapshot

WEB = Endpoint("a" * 64, "web", "172.17.0.2", "bridge", "docker0")
EMPTY = "*nat\n:DOCKER - [0:0]\nCOMMIT\n*filter\n:DOCKER - [0:0]\nCOMMIT\n"


def tables_with(rules):
    tables = parse_save(EMPTY)
    for rule in rules:
        tables[rule.table].chains.setdefault(rule.chain, []).append(rule)
    return tables


IPTABLES = IptablesPublisher(runner=None, engine=None)


def plan(tables, mappings, state="present", exclusive=False, exists=True, endpoint=WEB):
    """-> (Plan, stale tags taken over)"""
    request = MappingRequest(endpoint, tuple(mappings), state, exclusive, lambda cid: exists)
    return plan_family(IPTABLES, IptablesSnapshot({4: (None, tables)}, Layout()), request, 4)


def test_empty_ruleset_adds_everything_and_restore_text_groups_by_table():
    result, stale = plan(tables_with([]), [PortMapping("tcp", 8080, 80)])
    assert result.add == Layout().render(PortMapping("tcp", 8080, 80), WEB) and not result.delete and not stale
    text = Plan(result.delete, result.add).restore_text()
    assert text.startswith("*nat\n-A DOCKER ") and text.count("COMMIT") == 2
    assert "*filter\n-A DOCKER -d 172.17.0.2/32" in text


def test_applied_state_plans_nothing():
    desired = Layout().render(PortMapping("tcp", 8080, 80), WEB)
    assert not plan(tables_with(desired), [PortMapping("tcp", 8080, 80)])[0]


def test_foreign_rules_are_never_deleted():
    foreign = Rule("nat", "DOCKER", ("-p", "tcp", "-m", "tcp", "--dport", "9", "-j", "RETURN"))
    result = plan(tables_with([foreign]), [], state="absent")[0]
    assert not result


def test_changed_container_port_replaces_the_rules():
    old = Layout().render(PortMapping("tcp", 8080, 80), WEB)
    result = plan(tables_with(old), [PortMapping("tcp", 8080, 81)])[0]
    assert set(result.delete) == set(old) and len(result.add) == 3


def test_other_container_rules_conflict_or_are_taken_over():
    other = Endpoint("b" * 64, "old", "172.17.0.9", "bridge", "docker0")
    theirs = Layout().render(PortMapping("tcp", 8080, 80), other)
    with pytest.raises(ConflictError, match="bbbbbbbbbbbb"):
        plan(tables_with(theirs), [PortMapping("tcp", 8080, 80)])
    result, stale = plan(tables_with(theirs), [PortMapping("tcp", 8080, 80)], exists=False)
    assert set(result.delete) == set(theirs) and stale == {"hotport:bbbbbbbbbbbb:tcp/8080"}


def test_current_mappings_read_back_from_dnat_rules():
    loopback = parse_ports(["127.0.0.1:5353:53/udp"])
    guarded = parse_ports(["8080:80"], allowed_sources=["10.0.0.0/8", "192.0.2.7"], local_access=True)
    rules = [rule for mapping in loopback + guarded for rule in Layout().render(mapping, WEB)]
    assert current_mappings(IptablesSnapshot({4: (None, tables_with([]))}, Layout()), rules, "a" * 12) == [
        dict(host_ip="0.0.0.0", host_port=8080, container_port=80, protocol="tcp",
             allowed_sources=["10.0.0.0/8", "192.0.2.7/32"], local_access=True),
        dict(host_ip="127.0.0.1", host_port=5353, container_port=53, protocol="udp",
             allowed_sources=[], local_access=True)]


def test_insert_rules_carry_their_position():
    rule = Rule("filter", "DOCKER", ("-j", "ACCEPT"), position=1)
    assert Plan(add=[rule]).restore_text() == "*filter\n-I DOCKER 1 -j ACCEPT\nCOMMIT\n"


def test_arguments_are_quoted_the_way_iptables_restore_reads_them():
    rule = Rule("nat", "DOCKER", ("-m", "comment", "--comment", 'a "b" c', "-j", "RETURN"))
    assert rule.line() == '-A DOCKER -m comment --comment "a \\"b\\" c" -j RETURN'
    assert parse_save("*nat\n%s\nCOMMIT\n" % rule.line())["nat"].rules("DOCKER")[0].args == rule.args


def docker_publishes(host_ip, port):
    """Tables where Docker publishes ``port`` on ``host_ip`` ('' for every address) to another container."""
    destination = "-d %s/32 " % host_ip if host_ip else ""
    return parse_save("*nat\n:DOCKER - [0:0]\n-A DOCKER %s! -i docker0 -p tcp -m tcp --dport %d -j DNAT "
                      "--to-destination 172.17.0.5:443\nCOMMIT\n*filter\n:DOCKER - [0:0]\nCOMMIT\n"
                      % (destination, port))


@pytest.mark.parametrize("docker_ip, request_spec", [
    ("", "127.0.0.1:8443:443"),   # Docker on every address, hotport on one of them
    ("127.0.0.1", "8443:443"),    # Docker on one address, hotport on every address
    ("127.0.0.1", "127.0.0.1:8443:443"),
])
def test_a_host_port_docker_publishes_on_any_overlapping_address_conflicts(docker_ip, request_spec):
    with pytest.raises(ConflictError, match="already published by Docker"):
        plan(docker_publishes(docker_ip, 8443), parse_ports([request_spec]))


def test_the_same_host_port_on_another_address_is_free():
    result, stale = plan(docker_publishes("127.0.0.1", 8443), parse_ports(["127.0.0.2:8443:443"]))
    assert result.add and not result.delete and not stale
