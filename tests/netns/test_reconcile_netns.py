"""reconcile() against real iptables (nft and legacy) in throwaway network namespaces
holding Docker-like rulesets of each layout."""
import shlex
import subprocess
import sys
import time

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import LayoutError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import NetfilterError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables import Iptables, apply_plan
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import Plan, Rule
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.planner import ConflictError

from ..conftest import BUILD
from .conftest import ENGINE, HOST_ADDRESS, HOST_ADDRESS6, Host, endpoint, reconcile_on

XTABLES_LOCK = "/run/xtables.lock"

TAG = '-m comment --comment "hotport:c0ffee0000aa:%s"'
DNAT = '-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 ' + TAG % "tcp/8080" + ' -j DNAT --to-destination 172.17.0.2:80'
DNAT_NO_PROXY = DNAT.replace("! -i docker0 ", "")
ACCEPT = '-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 ' + TAG % "tcp/8080" + ' -j ACCEPT'
MASQUERADE = ('-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 '
              + TAG % "tcp/8080" + ' -j MASQUERADE')
# What Docker itself writes for -p 8080:80 on each layout, plus our tag.
EXPECTED = {
    "classic": {DNAT, ACCEPT, MASQUERADE},
    "docker28": {DNAT, ACCEPT},
    "docker28-noproxy": {DNAT_NO_PROXY, ACCEPT, MASQUERADE},
}
LAYOUT_NAMES = {"classic": ("classic", True), "docker28": ("docker28", True),
                "docker28-noproxy": ("docker28", False)}


def untagged(text):
    return [line for line in text.splitlines() if "hotport:" not in line]


def chain_rules(text, table, chain):
    rules, current = [], None
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif current == table and line.startswith("-A %s " % chain):
            rules.append(line)
    return rules


def test_apply_writes_the_rules_docker_writes_and_nothing_else(host, apply):
    pristine = host.save()
    outcome = apply(host, ["8080:80"])
    assert outcome.changed
    assert set(host.tagged()) == EXPECTED[host.ruleset]
    assert untagged(host.save()) == untagged(pristine)
    assert outcome.engine["iptables"] == "iptables-" + host.variant
    assert (outcome.engine["layout"], outcome.engine["userland_proxy"]) == LAYOUT_NAMES[host.ruleset]
    # Without the userland proxy Docker's own NAT serves loopback and containers for every mapping.
    assert outcome.mappings == [dict(host_ip="0.0.0.0", host_port=8080, container_port=80, protocol="tcp",
                                     allowed_sources=[], local_access=not LAYOUT_NAMES[host.ruleset][1])]


def test_docker28_accept_goes_ahead_of_the_bridge_drop(docker28_host, apply):
    apply(docker28_host, ["8080:80"])
    docker_chain = chain_rules(docker28_host.save(), "filter", "DOCKER")
    assert docker_chain.index(ACCEPT) < docker_chain.index("-A DOCKER ! -i docker0 -o docker0 -j DROP")


def test_rerun_is_a_no_op(host, apply):
    apply(host, ["8080:80", "9000-9002:7000-7002", "5353:53/udp"])
    after_first = host.save()
    outcome = apply(host, ["8080:80", "9000-9002:7000-7002", "5353:53/udp"])
    assert not outcome.changed
    assert outcome.added == [] and outcome.removed == []
    assert host.save() == after_first


def test_absent_restores_the_ruleset_byte_for_byte(host, apply):
    pristine = host.save()
    apply(host, ["8080:80", "127.0.0.1:8081:81", "5353:53/udp"])
    outcome = apply(host, [], state="absent")
    assert outcome.changed
    assert host.save() == pristine


def test_absent_of_one_port_keeps_the_others(classic_host, apply):
    apply(classic_host, ["8080:80", "8081:81"])
    apply(classic_host, ["8081:81"], state="absent")
    assert set(classic_host.tagged()) == EXPECTED["classic"]


def test_check_mode_changes_nothing(host, apply):
    pristine = host.save()
    outcome = apply(host, ["8080:80"], check_mode=True)
    assert outcome.changed and len(outcome.added) == len(EXPECTED[host.ruleset])
    assert host.save() == pristine


def test_new_container_address_replaces_the_stale_rules(host, apply):
    apply(host, ["8080:80"])
    outcome = apply(host, ["8080:80"], ep=endpoint(ip="172.17.0.3"))
    assert outcome.changed and len(outcome.removed) == len(EXPECTED[host.ruleset])
    assert set(host.tagged()) == set(line.replace("172.17.0.2", "172.17.0.3") for line in EXPECTED[host.ruleset])
    assert not apply(host, ["8080:80"], ep=endpoint(ip="172.17.0.3")).changed


def test_port_published_by_docker_is_refused_and_nothing_changes(host, apply):
    pristine = host.save()
    with pytest.raises(ConflictError, match=r"8443:80/tcp is already published by Docker"):
        apply(host, ["8080:80", "8443:80"])
    assert host.save() == pristine


def test_port_mapped_to_another_live_container_is_refused(host, apply):
    other = endpoint(ip="172.17.0.5", container_id="beef" * 16)
    apply(host, ["8080:80"], ep=other)
    before = host.save()
    with pytest.raises(ConflictError, match="already mapped by hotport to container beefbeefbeef"):
        apply(host, ["8080:80"])
    assert host.save() == before


def test_port_of_a_removed_container_is_taken_over(host, apply):
    apply(host, ["8080:80"], ep=endpoint(ip="172.17.0.5", container_id="beef" * 16))
    outcome = apply(host, ["8080:80"], container_exists=lambda container_id: False)
    assert set(host.tagged()) == EXPECTED[host.ruleset]
    assert "beefbeefbeef" in outcome.warnings[0]


def test_different_host_addresses_share_a_port(classic_host, apply):
    apply(classic_host, ["127.0.0.1:8080:80"], ep=endpoint(ip="172.17.0.5", container_id="beef" * 16))
    apply(classic_host, ["198.18.0.1:8080:80"])
    assert len(classic_host.tagged()) == 8  # the loopback one also gets its OUTPUT DNAT and MASQUERADE


def test_exclusive_removes_the_containers_other_mappings(classic_host, apply):
    apply(classic_host, ["8080:80", "8081:81"])
    apply(classic_host, ["8080:80"], exclusive=True)
    assert set(classic_host.tagged()) == EXPECTED["classic"]


def test_duplicate_and_misplaced_copies_are_repaired(docker28_host, apply):
    # The classic hand-written recipe on Docker 28: ACCEPT appended behind the DROP.
    docker28_host.iptables("-t", "nat", *shlex.split(DNAT))
    docker28_host.iptables("-t", "nat", *shlex.split(DNAT))
    docker28_host.iptables(*shlex.split(ACCEPT))
    outcome = apply(docker28_host, ["8080:80"])
    assert outcome.changed
    saved = docker28_host.save()
    assert sorted(docker28_host.tagged()) == sorted(EXPECTED["docker28"])
    docker_chain = chain_rules(saved, "filter", "DOCKER")
    assert docker_chain.index(ACCEPT) < docker_chain.index("-A DOCKER ! -i docker0 -o docker0 -j DROP")
    assert not apply(docker28_host, ["8080:80"]).changed


def test_user_defined_bridge(classic_host, apply):
    ep = endpoint(ip="172.18.0.4", bridge="br-5e1f0a7c9d2b")
    apply(classic_host, ["8080:80"], ep=ep)
    assert set(classic_host.tagged()) == set(
        line.replace("docker0", "br-5e1f0a7c9d2b").replace("172.17.0.2", "172.18.0.4")
        for line in EXPECTED["classic"])


def test_sctp_gets_the_checksum_rule_on_classic_engines(classic_host, apply):
    apply(classic_host, ["3868:3868/sctp"])
    assert ('-A POSTROUTING -p sctp -m sctp --sport 3868 ' + TAG % "sctp/3868"
            + ' -j CHECKSUM --checksum-fill') in classic_host.tagged()
    apply(classic_host, [], state="absent")
    assert classic_host.tagged() == []


def test_failed_transaction_rolls_back_a_committed_table(host, apply):
    """iptables-restore commits table by table: nat is committed, filter then fails.
    The rollback must leave iptables-save byte-identical, positions included."""
    iptables = Iptables(host.runner, host.variant)
    apply(host, ["8080:80", "8081:81"])
    host.iptables("-t", "nat", "-A", "DOCKER", "-p", "tcp", "--dport", "1", "-j", "RETURN")
    before_text = host.save()
    before = iptables.read(["nat", "filter"])
    ours = [rule for rule in before["nat"].rules("DOCKER") if rule.owner_tag][0]
    new_nat = Rule("nat", "DOCKER", ("-p", "tcp", "-m", "tcp", "--dport", "9999", "-m", "comment",
                                     "--comment", "hotport:c0ffee0000aa:tcp/9999", "-j", "DNAT",
                                     "--to-destination", "172.17.0.9:99"))
    broken_filter = Rule("filter", "DOCKER", ("-p", "tcp", "-m", "comment", "--comment",
                                              "hotport:c0ffee0000aa:tcp/9999", "-j", "NO-SUCH-CHAIN"))
    plan = Plan(delete=[ours], add=[new_nat, broken_filter])
    with pytest.raises(NetfilterError, match="rolled back"):
        apply_plan(iptables, plan, before)
    assert host.save() == before_text


def test_failing_first_table_changes_nothing(classic_host):
    iptables = Iptables(classic_host.runner, classic_host.variant)
    before_text = classic_host.save()
    bad = Rule("nat", "DOCKER", ("-m", "comment", "--comment", "hotport:x:tcp/1", "-j", "NO-SUCH-CHAIN"))
    with pytest.raises(NetfilterError, match="nothing was changed"):
        apply_plan(iptables, Plan(add=[bad]), iptables.read(["nat"]))
    assert classic_host.save() == before_text


def test_ruleset_changed_between_read_and_write_is_retried(host, apply, tmp_path):
    """A concurrent writer deletes one of our rules after we read: the transaction fails,
    is rolled back, and the re-read plan succeeds."""
    apply(host, ["8080:80"])

    class RacingRunner:
        raced = False

        def which(self, name):
            return host.runner.which(name)

        def run(self, argv, data=None):
            if argv[0].endswith("-restore") and not self.raced:
                RacingRunner.raced = True
                host.iptables(*shlex.split(ACCEPT.replace("-A DOCKER", "-D DOCKER")))
            return host.runner.run(argv, data)

    outcome = reconcile_on(RacingRunner(), ENGINE, endpoint(ip="172.17.0.3"), parse_ports(["8080:80"]),
                           str(tmp_path / "lock"))
    assert RacingRunner.raced and outcome.changed
    assert sorted(host.tagged()) == sorted(line.replace("172.17.0.2", "172.17.0.3")
                                           for line in EXPECTED[host.ruleset])


def test_no_docker_chains_is_a_clear_error(classic_host, apply):
    classic_host.restore("*nat\n-F PREROUTING\n-F OUTPUT\n-F DOCKER\n-X DOCKER\nCOMMIT\n")
    with pytest.raises(NetfilterError, match="nat DOCKER chain was not found"):
        apply(classic_host, ["8080:80"])


@pytest.mark.parametrize("engine, message", [
    (EngineInfo("29.7.2", "1.55", "nftables"), "table ip docker-bridges was not found"),
    (EngineInfo("29.7.2", "1.55", "nftables+firewalld"), "table ip docker-bridges was not found"),
    (EngineInfo("29.7.2", "1.55", "iptables", rootless=True), "runs rootless, as an ordinary user, and this run is root"),
])
def test_engines_without_docker_chains_are_refused_by_name(classic_host, tmp_path, engine, message):
    """As on such engines: no Docker chains in the host's iptables at all (and here, no Docker
    nft tables either: the nftables publisher says so)."""
    classic_host.restore("*nat\n-F PREROUTING\n-F OUTPUT\n-F DOCKER\n-X DOCKER\nCOMMIT\n")
    pristine = classic_host.save()
    with pytest.raises(LayoutError, match=message):
        reconcile_on(classic_host.runner, engine, endpoint(), parse_ports(["8080:80"]), str(tmp_path / "lock"))
    assert classic_host.save() == pristine


def test_taking_over_an_sctp_port_removes_the_old_checksum_rule(classic_host, apply):
    apply(classic_host, ["3868:3868/sctp"], ep=endpoint(ip="172.17.0.5", container_id="beef" * 16))
    apply(classic_host, ["3868:3868/sctp"], container_exists=lambda container_id: False)
    tagged = classic_host.tagged()
    assert len(tagged) == 4 and not [line for line in tagged if "beefbeefbeef" in line]


def test_sources_and_local_access_round_trip(host, apply):
    """The extra rules compare token for token with iptables-save (a re-run is a no-op) and
    leave no trace when removed."""
    pristine = host.save()
    outcome = apply(host, ["8080:80", "127.0.0.1:8081:81"], sources=["10.0.0.0/8", "192.0.2.7"], local=True)
    tagged = host.tagged()
    assert len([line for line in tagged if "-s 10.0.0.0/8" in line and "tcp/8080" in line]) == (
        3 if host.ruleset != "docker28-noproxy" else 2)  # DNAT, ACCEPT, and the hairpin DNAT with the proxy
    assert [line for line in tagged if line.startswith("-A INPUT -p tcp -m tcp --dport 8080")][0].endswith("-j DROP")
    proxy = host.ruleset != "docker28-noproxy"
    assert bool([line for line in tagged if line.startswith("-A OUTPUT -d 127.0.0.0/8")]) == proxy
    assert bool([line for line in tagged if line.startswith("-A DOCKER -s 10.0.0.0/8 -i docker0")]) == proxy
    if proxy:
        assert host.run("sysctl", "-n", "net.ipv4.conf.docker0.route_localnet").stdout.strip() == "1"
    assert outcome.mappings[0]["allowed_sources"] == ["10.0.0.0/8", "192.0.2.7/32"]
    assert not apply(host, ["8080:80", "127.0.0.1:8081:81"], sources=["192.0.2.7/32", "10.0.0.0/8"], local=True).changed
    apply(host, [], state="absent")
    assert host.save() == pristine


def test_dropping_a_source_removes_only_its_rules(classic_host, apply):
    apply(classic_host, ["8080:80"], sources=["10.0.0.0/8", "192.0.2.7"])
    outcome = apply(classic_host, ["8080:80"], sources=["10.0.0.0/8"])
    assert len(outcome.removed) == 2 and not outcome.added
    assert not [line for line in classic_host.tagged() if "192.0.2.7" in line]


@pytest.fixture
def listener(classic_host):
    """A socket listening in the namespace, started and ended by its PID."""
    started = []

    def listen(address, port, kind="SOCK_STREAM"):
        code = ("import socket, time; s = socket.socket(socket.AF_INET, socket.%s); s.bind((%r, %d)); "
                "%s print('ready', flush=True); time.sleep(60)"
                % (kind, address, port, "s.listen();" if kind == "SOCK_STREAM" else ""))
        process = subprocess.Popen(["ip", "netns", "exec", classic_host.name, sys.executable, "-c", code],
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        started.append(process)
    yield listen
    for process in started:
        process.kill()
        process.wait()


def test_port_a_host_socket_listens_on_is_refused(classic_host, apply, listener):
    listener("0.0.0.0", 8080)
    listener("198.18.0.1", 5353, "SOCK_DGRAM")
    pristine = classic_host.save()
    with pytest.raises(ConflictError, match=r"socket listens on \*:8080/tcp.*Nothing was changed"):
        apply(classic_host, ["8080:80"])
    with pytest.raises(ConflictError, match=r"198.18.0.1:5353/udp"):
        apply(classic_host, ["5353:53/udp"])
    assert classic_host.save() == pristine
    assert apply(classic_host, ["8080:80/udp", "5353:53"]).changed  # other protocol: free


def test_loopback_listener_clashes_only_with_local_access(classic_host, apply, listener):
    listener("127.0.0.1", 8080)
    apply(classic_host, ["8080:80"])
    apply(classic_host, [], state="absent")
    with pytest.raises(ConflictError, match=r"127.0.0.1:8080/tcp"):
        apply(classic_host, ["8080:80"], local=True)


def test_host_ip_that_is_not_on_the_host_is_refused(classic_host, apply):
    pristine = classic_host.save()
    with pytest.raises(ConflictError, match=r"host IP 10.9.9.9 of 10.9.9.9:8080:80/tcp is not an address of this host"):
        apply(classic_host, ["10.9.9.9:8080:80"])
    assert classic_host.save() == pristine


def test_ten_concurrent_runs_leave_one_correct_state(host, tmp_path):
    """Ten processes map the same port and one port each at once: the host lock serialises
    them, every rule exists exactly once."""
    lock = str(tmp_path / "lock")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo, Endpoint\n"
            "from ansible_collections.hotport.docker.plugins.module_utils.runners import ProcessRunner\n"
            "from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports\n"
            "from ansible_collections.hotport.docker.plugins.module_utils.apply import reconcile\n"
            "from ansible_collections.hotport.docker.plugins.module_utils.planner import MappingRequest\n"
            "from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import publisher_for\n"
            "runner, engine = ProcessRunner(['ip', 'netns', 'exec', %r]), EngineInfo('test', 'test', 'iptables')\n"
            "request = MappingRequest(Endpoint(%r, 'web', '172.17.0.2', 'bridge', 'docker0'),\n"
            "                         tuple(parse_ports(['8080:80', '90%%02d:80' %% int(sys.argv[1])])))\n"
            "reconcile(runner, engine, publisher_for(runner, engine), request, lock_path=%r)\n"
            % (BUILD, host.name, endpoint().container_id, lock))
    processes = [subprocess.Popen([sys.executable, "-c", code, str(index)]) for index in range(10)]
    assert [process.wait() for process in processes] == [0] * 10
    tagged = host.tagged()
    assert len(tagged) == len(set(tagged)) == 11 * len(EXPECTED[host.ruleset])


def test_held_xtables_lock_is_waited_for(tmp_path, apply):
    """iptables-legacy-restore takes the host-wide xtables lock: while another process holds it,
    the run waits (-w) and then applies; nothing is half-written meanwhile."""
    made = Host("legacy", "classic")
    try:
        holder = subprocess.Popen(["flock", XTABLES_LOCK, "sh", "-c", "echo held; sleep 2"], stdout=subprocess.PIPE,
                                  text=True)
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        outcome = apply(made, ["8080:80"])
        assert time.monotonic() - started >= 1 and outcome.changed
        assert set(made.tagged()) == EXPECTED["classic"]
        holder.wait()
    finally:
        made.close()


def ours_as_docker(lines, tag, our_port, docker_port):
    """Our tagged lines without the tag and with our host port written as Docker's."""
    untagged = (line.replace(" -m comment --comment \"%s\"" % tag, "") for line in lines if tag in line)
    return set(line.replace("--dport %d " % our_port, "--dport %d " % docker_port) for line in untagged)


def test_ipv6_mapping_is_what_docker_writes_for_the_same_port(host, apply):
    """Our [::]:9444:443 for the fixture's v6 container, untagged and renumbered, equals the
    fixture's ip6tables rules for its -p 9443:443 (fe80 exclusion on 28 included). The fixtures
    are written here in Docker's form: a renderer test. The differential against rules Docker
    itself wrote is molecule/engine's test_ipv6_differential_against_docker_run_p."""
    pristine = host.save()
    twin = endpoint(ip="172.17.0.9", ip6="fd00:aa::9", container_id="beefbeefbeef" + "0" * 52)
    outcome = apply(host, ["[::]:9444:443"], ep=twin)
    docker = set(line for line in host.save6().splitlines() if "9443" in line or "fd00:aa::9/128" in line)
    docker = set(line for line in docker if "hotport:" not in line)
    assert ours_as_docker(host.save6().splitlines(), "hotport:beefbeefbeef:tcp/9444", 9444, 9443) == docker
    assert outcome.engine["ipv6"] and outcome.mappings[0]["host_ip"] == "::"
    assert all(text.startswith("-6 -t ") for text in outcome.added)
    assert not [line for line in host.tagged() if "hotport:" in line and "fd00" not in line]  # nothing in iptables
    assert not apply(host, ["[::]:9444:443"], ep=twin).changed
    apply(host, [], ep=twin, state="absent")
    assert host.save() == pristine


def test_ipv6_beside_ipv4_with_sources_and_hairpin(host, apply):
    """One host port in both families, each with its own sources; local_access is the hairpin
    (no ::1) in IPv6. Re-run no-op, removing the IPv4 one keeps the IPv6 one, removal leaves no trace."""
    pristine = host.save()
    ports = ["8080:80", "[::]:8080:80", "[%s]:8081:81/udp" % HOST_ADDRESS6]
    outcome = apply(host, ports, sources=["10.0.0.0/8", "2001:db8::/32"], local=True)
    v6 = [line for line in host.save6().splitlines() if "hotport:" in line]
    proxy = host.ruleset != "docker28-noproxy"
    assert [line for line in v6 if line.startswith("-A INPUT -p tcp -m tcp --dport 8080")][0].endswith("-j DROP")
    assert [line for line in v6 if line.startswith("-A INPUT -d %s/128 -p udp" % HOST_ADDRESS6)]
    assert not [line for line in v6 if "-A OUTPUT" in line or "10.0.0.0/8" in line or "fe80" in line]
    assert bool([line for line in v6 if line.startswith("-A DOCKER -s 2001:db8::/32 -i docker0")]) == proxy
    assert [item["allowed_sources"] for item in outcome.mappings if item["host_port"] == 8080] == [
        ["10.0.0.0/8"], ["2001:db8::/32"]]
    assert not apply(host, ports, sources=["2001:db8::/32", "10.0.0.0/8"], local=True).changed
    removed = apply(host, ["8080:80"], state="absent")
    assert removed.removed and not [text for text in removed.removed if text.startswith("-6 ")]
    assert [(item["host_ip"], item["host_port"]) for item in removed.mappings] == [
        ("::", 8080), (HOST_ADDRESS6, 8081)]
    apply(host, [], state="absent")
    assert host.save() == pristine


def test_ipv6_port_published_by_docker_is_refused_in_its_family_only(host, apply):
    pristine = host.save()
    with pytest.raises(ConflictError, match="already published by Docker"):
        apply(host, ["[::]:9443:80"])
    assert host.save() == pristine
    assert apply(host, ["9443:80"]).changed  # Docker published 9443 in IPv6 only here


def test_ipv6_needs_docker_ip6tables_and_an_address_on_the_host(v4_only_host, host, apply):
    pristine = v4_only_host.save()
    with pytest.raises(LayoutError, match='"ip6tables": true'):
        apply(v4_only_host, ["8080:80", "[::]:8080:80"])
    assert v4_only_host.save() == pristine
    assert not apply(v4_only_host, ["[::]:8080:80"], state="absent").changed
    with pytest.raises(ConflictError, match="2001:db8:9::1 of"):
        apply(host, ["[2001:db8:9::1]:8080:80"])


def test_ipv6_failure_rolls_back_the_ipv4_changes_of_the_run(classic_host, apply, tmp_path):
    """Both families or neither: ip6tables-restore fails after IPv4 was committed."""
    pristine = classic_host.save()

    class FailingIp6Runner:
        def which(self, name):
            return classic_host.runner.which(name)

        def run(self, argv, data=None):
            if argv[0].startswith("ip6tables-") and argv[0].endswith("-restore"):
                return 1, "", "ip6tables-restore: line 2 failed"
            return classic_host.runner.run(argv, data)

    with pytest.raises(NetfilterError, match="iptables-%s: a partial commit was rolled back" % classic_host.variant):
        reconcile_on(FailingIp6Runner(), ENGINE, endpoint(), parse_ports(["8080:80", "[::]:8080:80"]),
                     str(tmp_path / "lock"))
    assert classic_host.save() == pristine


def test_a_foreign_rule_with_a_tag_like_ours_is_never_touched(classic_host, apply):
    """A rule whose comment looks like a hotport tag, but whose content hotport never renders for
    that mapping, is someone else's: not taken over, not removed."""
    foreign = ["-A", "INPUT", "-p", "tcp", "-m", "tcp", "--dport", "38080", "-m", "comment", "--comment",
               "hotport:0000deadbeef:tcp/38080", "-j", "ACCEPT"]
    classic_host.iptables(*foreign)
    wrong_port = ["-t", "nat", "-A", "DOCKER", "-p", "tcp", "-m", "tcp", "--dport", "1", "-m", "comment",
                  "--comment", "hotport:0000deadbeef:tcp/38080", "-j", "RETURN"]
    classic_host.iptables(*wrong_port)
    apply(classic_host, ["38080:80"], container_exists=lambda container_id: False)
    apply(classic_host, ["38080:80"], state="absent")
    apply(classic_host, [], ep=endpoint(container_id="0000deadbeef" + "0" * 52, ip=""), state="absent")
    saved = classic_host.save()
    assert '-A INPUT -p tcp -m tcp --dport 38080 -m comment --comment "hotport:0000deadbeef:tcp/38080" -j ACCEPT' in saved
    assert '--dport 1 -m comment --comment "hotport:0000deadbeef:tcp/38080" -j RETURN' in saved


def udp_flows(host, port):
    """conntrack's UDP entries to ``port`` in the namespace (its lines)."""
    listing = host.run("conntrack", "-L", "-p", "udp", "--orig-port-dst", str(port), check=False).stdout
    return [line for line in listing.splitlines() if "dport=%d" % port in line]


def test_a_new_udp_mapping_forgets_the_flows_under_way_to_its_port(classic_host, apply):
    """A flow that began before the mapping stays un-NATed until it is forgotten, as Docker forgets it."""
    classic_host.run(sys.executable, "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                     ".sendto(b'x', (%r, 5353))" % HOST_ADDRESS)
    assert udp_flows(classic_host, 5353), "no flow to forget: the test sent nothing"
    apply(classic_host, ["5353:53/udp"])
    assert udp_flows(classic_host, 5353) == []
