"""Verify hotport's nftables publisher on Docker 29.7.2 with --firewall-backend=nftables (testinfra).

Probes go from this controller to the DinD host's address, like a remote client's. Docker's
twin containers (-p) are the oracle: hotport's twins must answer the same from outside, from the
host and from a neighbour container, with rules that mean the same. Tests run in file order: the
last ones restart the container, then dockerd (the very last without the accept mark).
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from probes import (PAYLOAD, ask6, container_ip, dind_address, eventually, hairpin, hotport,  # noqa: E402
                    admitted_then_dropped, own_address, rerun_follows_a_stolen_address, tcp_get, udp_ask)

WHOLE = "nft -s list ruleset"  # -s: no counters, so a ruleset compares byte for byte


def docker_tables(host):
    return host.check_output("nft -s list table ip docker-bridges; nft -s list table ip6 docker-bridges")


def chain(host, family, table, name):
    return host.check_output("nft -s list chain %s %s %s" % (family, table, name)).splitlines()


def meaning(lines, ip, pattern):
    """{(protocol, container port)} of the rules about ``ip`` that match ``pattern`` (with
    groups protocol and port)."""
    found = set()
    for line in lines:
        match = re.search(pattern % re.escape(ip), line)
        if match:
            found.add((match.group("protocol"), int(match.group("port"))))
    return found


def test_the_engine_runs_the_nftables_backend_with_the_accept_mark(host):
    assert host.check_output("docker info -f '{{.FirewallBackend.Driver}}'") == "nftables"
    facts = hotport(host, container="web", ports=["8080:80", "8053:53/udp"])
    assert facts.get("changed") is False, facts
    assert facts["engine"]["publisher"] == "nftables" and facts["engine"]["accept_mark"] == "0x4000000/0x4000000"


def test_tcp_and_udp_answer_from_outside(host):
    address = dind_address(host)
    assert tcp_get(address, 8080) == PAYLOAD
    assert udp_ask(address, 8053) == PAYLOAD


def test_differential_against_docker_run_p(host):
    docker_ip, hotport_ip = container_ip(host, "twin-docker"), container_ip(host, "twin-hotport")
    # Docker's rules carry counters (nft -s prints the bare word): what lies between is not compared.
    dnat = r"(?P<protocol>tcp|udp) dport \d+ .*dnat to %s:(?P<port>\d+)"
    docker_dnats = meaning(chain(host, "ip", "docker-bridges", "nat-prerouting-and-output"), docker_ip, dnat)
    hotport_dnats = meaning(chain(host, "ip", "hotport", "nat-mappings"), hotport_ip, dnat)
    assert docker_dnats == hotport_dnats == {("tcp", 80), ("udp", 53)}
    docker_accepts = meaning(chain(host, "ip", "docker-bridges", "filter-forward-in__docker0"), docker_ip,
                             r"ip daddr %s (?P<protocol>tcp|udp) dport (?P<port>\d+) .*accept")
    hotport_marks = meaning(chain(host, "ip", "hotport", "filter-forward"), hotport_ip,
                            r'ip daddr %s oifname "docker0" (?P<protocol>tcp|udp) dport (?P<port>\d+) '
                            r"ct status dnat meta mark set meta mark \| 0x04000000")
    assert docker_accepts == hotport_marks == {("tcp", 80), ("udp", 53)}
    address = dind_address(host)
    assert tcp_get(address, 9090) == tcp_get(address, 9091) == PAYLOAD
    assert udp_ask(address, 9053) == udp_ask(address, 9054) == PAYLOAD
    own = own_address(host)
    for port in (9090, 9091):
        assert host.check_output("curl -sS -m 3 http://%s:%d/" % (own, port)) == PAYLOAD, port
        assert host.check_output("curl -sS -m 3 http://127.0.0.1:%d/" % port) == PAYLOAD, port
        assert hairpin(host, "web", "TCP:%s:%d" % (own, port)) == PAYLOAD, port


def test_loopback_differential_against_docker_run_p(host):
    """-p 127.0.0.1:P: Docker drops what arrives for it on any interface but lo ("DROP REMOTE
    LOOPBACK"); hotport's table the same for its twin (issue 34)."""
    mapped = hotport(host, container="twinlo-hotport", ports=["127.0.0.1:9296:80"])
    assert "mappings" in mapped, mapped

    def drops(lines, port):
        # Docker's rule carries a counter and its comment, hotport's its tag: neither is compared.
        return [re.sub(r" (counter|comment) .*$| drop .*$", "", line.strip()).replace("dport %d" % port, "dport HPORT")
                for line in lines if "dport %d " % port in line and "drop" in line]
    docker_side = drops(chain(host, "ip", "docker-bridges", "raw-PREROUTING"), 9295)
    hotport_side = drops(chain(host, "ip", "hotport", "raw-prerouting"), 9296)
    assert docker_side == hotport_side == ['iifname != "lo" ip daddr 127.0.0.1 tcp dport HPORT'], (docker_side, hotport_side)
    assert not hotport(host, container="twinlo-hotport", ports=["127.0.0.1:9296:80"])["changed"]


def test_plain_mappings_are_elements_that_mean_what_dockers_rules_mean(host):
    """twin-plain's mappings have no options: each is an element of docker0's DNAT map and of its
    set of flows to mark, looked up by one rule per bridge, not a rule per mapping. They answer
    from outside as twin-docker's -p does, and mean what Docker's DNAT and accept rules mean."""
    docker_ip, plain_ip = container_ip(host, "twin-docker"), re.escape(container_ip(host, "twin-plain"))
    listing = host.check_output("nft -s list map ip hotport dnat-docker0; nft -s list set ip hotport forward-docker0")
    dnats = set((found[0], int(found[1]), int(found[2])) for found in re.findall(
        r'(tcp|udp) \. (\d+) comment "hotport:[^"]*" : %s \. (\d+)' % plain_ip, listing))
    marks = set((found[0], int(found[2]), int(found[1])) for found in re.findall(
        r'%s \. (tcp|udp) \. (\d+) \. (\d+) comment "hotport:' % plain_ip, listing))
    assert dnats == marks == {("tcp", 9092, 80), ("udp", 9055, 53)}, listing
    docker_dnats = meaning(chain(host, "ip", "docker-bridges", "nat-prerouting-and-output"), docker_ip,
                           r"(?P<protocol>tcp|udp) dport \d+ .*dnat to %s:(?P<port>\d+)")
    docker_accepts = meaning(chain(host, "ip", "docker-bridges", "filter-forward-in__docker0"), docker_ip,
                             r"ip daddr %s (?P<protocol>tcp|udp) dport (?P<port>\d+) .*accept")
    assert docker_dnats == docker_accepts == set((protocol, port) for protocol, dummy, port in dnats)
    lookups = [line for line in chain(host, "ip", "hotport", "nat-mappings") if "map @dnat-docker0" in line]
    assert len(lookups) == 1 and 'iifname != "docker0"' in lookups[0], lookups
    address = dind_address(host)
    assert tcp_get(address, 9090) == tcp_get(address, 9092) == PAYLOAD
    assert udp_ask(address, 9053) == udp_ask(address, 9055) == PAYLOAD


def test_ipv6_answers_like_docker_run_p(host):
    assert ask6(host, 9190) == ask6(host, 9191) == PAYLOAD
    assert tcp_get(dind_address(host), 9191) == PAYLOAD
    assert re.search(r'tcp \. 9191 comment "hotport:[^"]*" : fd00:aa::',
                     host.check_output("nft -s list table ip6 hotport"))


def test_allowed_sources_admit_only_the_listed(host):
    admitted_then_dropped(host)


def test_info_lists_dockers_ports_and_hotports(host):
    info = host.ansible("hotport.docker.container_port_map_info", "", check=False)
    listed = dict(((item["owner"], item["protocol"], item["host_ip"], item["host_port"]),
                   (item["container"] or {}).get("name")) for item in info["mappings"])
    assert listed[("docker", "tcp", "0.0.0.0", 9090)] == "twin-docker"
    assert listed[("hotport", "tcp", "0.0.0.0", 9091)] == "twin-hotport"
    assert listed[("hotport", "tcp", "::", 9191)] == "twin6-hotport"
    ours = [item for item in info["mappings"] if item["owner"] == "hotport"]
    assert ours and all(item["complete"] and not item["stale"] for item in ours), ours


def test_dockers_tables_stay_byte_identical_and_absent_leaves_no_rule(host):
    before = docker_tables(host)
    mapped = hotport(host, container="web", ports=["9094:80", "[::]:9094:80"])
    assert "has no IPv6 address" in mapped.get("msg", ""), mapped  # web is v4 only: refused whole
    mapped = hotport(host, container="web", ports=["9094:80"])
    assert mapped.get("changed") and tcp_get(dind_address(host), 9094) == PAYLOAD, mapped
    removed = hotport(host, container="web", ports=["9094:80"], state="absent")
    assert removed.get("changed"), removed
    assert tcp_get(dind_address(host), 8080) == PAYLOAD and tcp_get(dind_address(host), 9094) is None
    assert not [line for line in host.check_output(WHOLE).splitlines() if "tcp/9094" in line]
    assert docker_tables(host) == before


def test_refusals_change_nothing(host):
    before = host.check_output(WHOLE)
    taken = hotport(host, container="web", ports=["9090:80"])
    assert "already published by Docker" in taken.get("msg", ""), taken
    foreign = hotport(host, container="web", ports=["10.9.9.9:9096:80"])
    assert "is not an address of this host" in foreign.get("msg", ""), foreign
    assert host.check_output(WHOLE) == before


def test_restart_with_a_new_address_then_rerun_moves_the_mapping(host):
    old_ip = rerun_follows_a_stolen_address(host)
    assert not [line for line in host.check_output(WHOLE).splitlines()
                if "hotport:" in line and re.search(re.escape(old_ip) + r"\b", line)]


def restart_dockerd(host):
    """Kill dockerd (the platform's loop starts it again) -> once web runs again."""
    host.check_output("kill $(pidof dockerd)")

    def web_running():
        return host.run("docker inspect -f '{{.State.Running}}' web").stdout.strip()

    assert eventually(web_running, "true") == "true"


def test_dockerd_restart_leaves_hotports_tables_alone(host):
    """Docker re-creates its own tables at start, and only those: hotport's table outlives it.
    The containers restart too, maybe at other addresses, which a re-run (or the reconciler)
    follows."""
    restart_dockerd(host)
    address = dind_address(host)
    assert eventually(lambda: tcp_get(address, 9090), PAYLOAD) == PAYLOAD  # Docker's own -p is back
    assert "hotport-table" in host.check_output("nft -s list table ip hotport")
    hotport(host, container="web", ports=["8080:80", "8053:53/udp"])
    assert tcp_get(address, 8080) == PAYLOAD


def test_absent_closes_the_port(host):
    web_id = host.check_output("docker inspect -f '{{.Id}}' web")
    closed = hotport(host, container="web", state="absent")
    assert closed.get("changed"), closed
    assert tcp_get(dind_address(host), 9090) == PAYLOAD  # the probe works on this host ...
    assert tcp_get(dind_address(host), 8080) is None
    assert not [line for line in host.check_output(WHOLE).splitlines() if "hotport:" + web_id[:12] in line]


def test_without_the_accept_mark_the_refusal_names_the_option_and_a_sidecar_publishes(host):
    """Runs last: dockerd restarts without bridge-accept-fwmark. The kernel method is refused
    with nothing changed; method: sidecar publishes through Docker itself, survives a dockerd
    restart and follows its target by name, and absent removes it."""
    host.check_output("echo '{\"firewall-backend\": \"nftables\", \"ip6tables\": true}' > /etc/docker/daemon.json")
    restart_dockerd(host)

    def marked():
        return "ALLOW FW MARK" in host.check_output("nft -s list table ip docker-bridges")

    assert eventually(marked, False) is False
    before = host.check_output(WHOLE)
    refused = hotport(host, container="web", ports=["8080:80"])
    message = refused.get("msg", "")
    assert '"bridge-accept-fwmark": "0x4000000/0x4000000"' in message and "restart dockerd" in message, refused
    assert "method: sidecar" in message, refused
    assert host.check_output(WHOLE) == before
    sidecar = dict(container="twin6-hotport", ports=["9097:80"], method="sidecar", sidecar_image="hotport/target")
    assert hotport(host, **sidecar).get("changed")
    address = dind_address(host)
    assert tcp_get(address, 9097) == PAYLOAD
    assert hotport(host, **sidecar).get("changed") is False
    restart_dockerd(host)
    assert eventually(lambda: tcp_get(address, 9097), PAYLOAD) == PAYLOAD, "the sidecar did not come back"
    assert hotport(host, **dict(sidecar, state="absent")).get("changed")
    assert tcp_get(address, 9090) == PAYLOAD and tcp_get(address, 9097) is None
    assert host.check_output("docker ps -aq --filter label=io.hotport.sidecar") == ""
