"""hotport.docker.container_port_map on a real Docker engine (20.10 here)."""
import pytest

from .conftest import PAYLOAD, address, docker, fetch, fetch_udp, module, ruleset


def test_unpublished_port_answers_rerun_is_a_no_op_and_absent_closes_it(containers):
    web = containers()
    assert fetch(18080) is None
    first = module(container=web, ports=["18080:80"])
    assert first["changed"] and not first.get("failed"), first
    assert first["container"]["ip"] == address(web) and first["container"]["bridge"] == "docker0"
    assert fetch(18080) == PAYLOAD
    second = module(container=web, ports=["18080:80"])
    assert second["changed"] is False and second["rules"] == {"added": [], "removed": []}
    gone = module(container=web, state="absent")
    assert gone["changed"] and gone["mappings"] == []
    assert fetch(18080) is None
    assert "hotport:%s" % first["container"]["id"][:12] not in ruleset()


def test_user_defined_network_and_a_container_on_two_networks(containers, network):
    net = network()
    web = containers()
    docker("network", "connect", net, web)
    ambiguous = module(container=web, ports=["18081:80"])
    assert ambiguous.get("failed") and "bridge" in ambiguous["msg"] and net in ambiguous["msg"]
    mapped = module(container=web, ports=["18081:80"], network=net)
    assert mapped["container"]["bridge"] == "br-" + docker("network", "inspect", "-f", "{{.Id}}", net)[:12]
    assert mapped["container"]["ip"] == address(web, net)
    assert fetch(18081) == PAYLOAD


def test_restart_with_a_new_address_is_moved_by_a_rerun(containers):
    web = containers()
    module(container=web, ports=["18082:80"])
    old_ip = address(web)
    docker("stop", "-t", "1", web)
    thief = containers(command=("/bin/busybox", "sh", "-c",
                                "busybox mkdir /t; echo thief > /t/index.html; exec busybox httpd -f -p 80 -h /t"))
    docker("start", web)
    if address(thief) != old_ip:
        pytest.fail("the engine did not reuse %s; the trap this test shows needs it" % old_ip)
    assert fetch(18082) == "thief"  # the trap: a stale rule serves whoever holds the old IP
    moved = module(container=web, ports=["18082:80"])
    assert moved["changed"] and all(old_ip in rule for rule in moved["rules"]["removed"])
    assert fetch(18082) == PAYLOAD
    assert old_ip not in "\n".join(l for l in ruleset().splitlines() if "hotport:" in l)


def test_port_published_by_docker_is_refused_with_nothing_changed(containers):
    containers("-p", "18443:80")
    web = containers()
    before = ruleset()
    refused = module(container=web, ports=["18443:80"])
    assert refused.get("failed") and "already published by Docker" in refused["msg"]
    assert ruleset() == before


def test_check_and_diff_mode(containers):
    web = containers()
    before = ruleset()
    planned = module(check=True, diff=True, container=web, ports=["18083:80", "15353:53/udp"])
    assert planned["changed"] and len(planned["rules"]["added"]) == 6
    assert ruleset() == before and fetch(18083) is None
    applied = module(container=web, ports=["18083:80", "15353:53/udp"])
    assert sorted(applied["rules"]["added"]) == sorted(planned["rules"]["added"])
    assert "-p udp -m udp --dport 15353" in ruleset()


def test_udp_mapping_answers(containers):
    web = containers()
    assert fetch_udp(15354) is None
    module(container=web, ports=["15354:53/udp"])
    assert fetch_udp(15354) == PAYLOAD
