"""hotport.docker.container_port_map on a real Docker engine (20.10 here)."""
import subprocess
import sys
import time

import pytest

from .conftest import PAYLOAD, address, docker, fetch, fetch_udp, module, ruleset, sh


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


def diff_of(result):
    """The rules a diff-mode run shows leaving and arriving -> (sorted removed, sorted added)."""
    lines = result["diff_lines"]
    assert any(line.startswith("--- before: hotport rules of ") for line in lines), lines
    removed = [line[1:] for line in lines if line.startswith("-") and not line.startswith("--- ")]
    added = [line[1:] for line in lines if line.startswith("+") and not line.startswith("+++ ")]
    return sorted(removed), sorted(added)


def test_check_and_diff_mode(containers):
    web = containers()
    before = ruleset()
    planned = module(check=True, diff=True, container=web, ports=["18083:80", "15353:53/udp"])
    assert planned["changed"] and len(planned["rules"]["added"]) == 6
    assert diff_of(planned) == ([], sorted(planned["rules"]["added"]))
    assert ruleset() == before and fetch(18083) is None
    applied = module(container=web, ports=["18083:80", "15353:53/udp"])
    assert sorted(applied["rules"]["added"]) == sorted(planned["rules"]["added"])
    assert "-p udp -m udp --dport 15353" in ruleset()
    assert fetch(18083) == PAYLOAD
    mapped = ruleset()
    closing = module(check=True, diff=True, container=web, state="absent", ports=["15353:53/udp"])
    udp_rules = [rule for rule in applied["rules"]["added"] if "udp/15353" in rule]
    assert closing["changed"] and diff_of(closing) == (sorted(udp_rules), [])
    assert ruleset() == mapped


def test_udp_client_that_sent_before_the_mapping_is_served_after_it(containers):
    """A UDP client that sent to the host port before it was mapped has a conntrack entry that
    ends on the host; its next datagram from the same source port would follow that entry and
    never be translated. hotport deletes the entry, as Docker does for -p."""
    web = containers()
    source_port = 40053
    assert fetch_udp(15356, source_port) is None
    flows = sh("conntrack", "-L", "-p", "udp", "--orig-port-dst", "15356", "--orig-port-src", str(source_port))
    assert "src=198.18.0.2" in flows.stdout, "the test needs the old flow in conntrack"
    mapped = module(container=web, ports=["15356:53/udp"])
    assert mapped["changed"] and not mapped.get("warnings"), mapped
    assert fetch_udp(15356, source_port) == PAYLOAD


def test_udp_mapping_answers(containers):
    web = containers()
    assert fetch_udp(15354) is None
    module(container=web, ports=["15354:53/udp"])
    assert fetch_udp(15354) == PAYLOAD


def test_api_version_pins_the_calls_and_debug_lists_them(containers):
    """Issue 37: api_version and debug as community.docker has them. This engine (20.10) speaks API
    1.12 to 1.41: a version outside is refused with that range before anything changes."""
    web = containers()
    mapped = module(container=web, ports=["18082:80"], api_version="1.41", debug=True)
    assert mapped["changed"] and fetch(18082) == PAYLOAD
    calls = mapped["api_calls"]
    assert calls[0].startswith("GET /version -> 200 (") and calls[1].startswith("GET /info -> 200 (")
    assert any(call.startswith("GET /v1.41/containers/%s/json -> 200" % web) for call in calls), calls
    assert "api_calls" not in module(container=web, ports=["18082:80"])
    before = ruleset()
    newer = module(container=web, ports=["18083:80"], docker_api_version="1.52", debug=True)
    assert newer["failed"] and "api_version 1.52 is not one this engine speaks" in newer["msg"]
    assert "API 1.12 to 1.41" in newer["msg"] and newer["api_calls"] == [newer["api_calls"][0]]
    assert module(container=web, ports=["18083:80"], api_version="latest")["msg"].startswith(
        "api_version 'latest' is not auto or a Docker API version")
    assert ruleset() == before and fetch(18083) is None


def test_an_endpoint_that_is_not_docker_is_named_so(containers, tmp_path):
    """Issue 37: a web server at docker_host answered "Docker API error: <raw HTML> (HTTP 404)"."""
    web = containers()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "18099"],
                              cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for dummy in range(50):
            if sh("curl", "-s", "-o", "/dev/null", "http://127.0.0.1:18099/", check=False).returncode == 0:
                break
            time.sleep(0.1)
        before = ruleset()
        result = module(container=web, ports=["18084:80"], docker_host="tcp://127.0.0.1:18099")
    finally:
        server.terminate()
        server.wait()
    assert result["failed"] and "<" not in result["msg"], result["msg"]
    assert ("tcp://127.0.0.1:18099 answered with text/html 'Error response', not with the Docker API's JSON error: "
            "is docker_host a Docker engine") in result["msg"]
    assert ruleset() == before
