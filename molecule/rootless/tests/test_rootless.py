"""Verify hotport with rootless Docker 29.7.2 (testinfra; Ansible connects as the ordinary user hp,
with no root). The kernel method publishes as Docker's own -p does there: rules in the engine's
network namespace and a RootlessKit port; hotport-reconcile (started by prepare.yml, as hp) keeps
it across a restart of the engine. Tests run in file order."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from probes import PAYLOAD, assert_udp_answers, dind_address, eventually, hotport, tcp_get, udp_ask  # noqa: E402

SOCKET = "unix:///tmp/rl-run/docker.sock"
DOCKER = "DOCKER_HOST=%s docker " % SOCKET
STATE = "/tmp/rl-run/dockerd-rootless"
STATE_FILE = "/home/hp/.config/hotport/mappings.json"
KERNEL = ["8080:80", "8053:53/udp"]
SIDECARS = ["8070:80", "8073:53/udp"]


def inside(host, command):
    """``command`` in the engine's namespaces, as hp, entered as hotport enters them (runners.NamespaceRunner):
    the network namespace RootlessKit binds at ``netns`` in its state dir with --detach-netns (the child
    itself then stays in the host's), else the child's own."""
    child = "$(cat %s/child_pid)" % STATE
    bound = "/proc/%s/root%s/netns" % (child, STATE)
    return host.check_output("nsenter -U --preserve-credentials -m -t %s $([ -e %s ] && echo --net=%s || echo -n) -- %s"
                             % (child, bound, bound, command))


def namespace_rules(host):
    """The engine's namespace's ruleset (every table), without the counters and timestamps."""
    return "\n".join(line for line in inside(host, "iptables-save").splitlines() if not line.startswith("#"))


def ports(host):
    """RootlessKit's ports: sorted 'PROTO PARENTIP:PORT CHILDIP:PORT' texts."""
    listing = [json.loads(line) for line in  # one JSON object a line
               host.check_output("rootlessctl --socket %s/api.sock list-ports --json" % STATE).splitlines()]
    return sorted("%s %s:%s %s:%s" % (entry["spec"]["proto"], entry["spec"].get("parentIP"),
                                      entry["spec"]["parentPort"], entry["spec"].get("childIP"),
                                      entry["spec"].get("childPort")) for entry in listing)


def kernel(host, **args):
    return hotport(host, container="web", docker_host=SOCKET, state_file=STATE_FILE, **args)


def containers(host):
    return host.check_output(DOCKER + "ps -a --format '{{.Names}}'").split()


def test_the_engine_is_rootless_and_ansible_is_not_root(host):
    assert host.check_output("id -u") == "1000"
    assert "name=rootless" in host.check_output(DOCKER + "info -f '{{json .SecurityOptions}}'")


def test_the_kernel_method_answers_from_outside_like_the_p_twin_with_no_extra_container(host):
    address = dind_address(host)
    assert tcp_get(address, 9090) == PAYLOAD  # Docker's own -p, through RootlessKit
    assert tcp_get(address, 8080) == PAYLOAD
    assert udp_ask(address, 9053) == PAYLOAD
    assert_udp_answers(host, address, 8053)
    assert sorted(name for name in containers(host) if "8080" in name or "8053" in name) == []


def test_its_rules_are_in_the_engines_namespace_and_its_ports_in_rootlesskit(host):
    tagged = [line for line in namespace_rules(host).splitlines() if "hotport:" in line]
    assert any("--dport 8080" in line and "-j DNAT" in line for line in tagged), tagged
    assert any("--dport 8053" in line and "-j DNAT" in line for line in tagged), tagged
    assert host.run("iptables-save 2>/dev/null | grep -c hotport").stdout.strip() in ("", "0")  # not the host's
    listed = ports(host)
    assert any(":8080 " in entry and entry.startswith("tcp") for entry in listed), listed
    assert any(":8053 " in entry and entry.startswith("udp") for entry in listed), listed


def test_a_rerun_is_a_no_op_for_both_methods(host):
    again = kernel(host, ports=KERNEL)
    assert again.get("changed") is False, again
    sidecars = hotport(host, container="web", ports=SIDECARS, method="sidecar", sidecar_image="hotport/target",
                       docker_host=SOCKET)
    assert sidecars.get("changed") is False, sidecars


def test_the_sidecars_answer_too(host):
    address = dind_address(host)
    assert tcp_get(address, 8070) == PAYLOAD
    assert_udp_answers(host, address, 8073)


def test_the_info_module_lists_both_methods_without_root(host):
    info = host.ansible("hotport.docker.container_port_map_info", "docker_host=%s owner=hotport" % SOCKET,
                        check=False)
    assert sorted((item["method"], item["protocol"], item["host_port"], item["stale"]) for item in info["mappings"]) \
        == [("kernel", "tcp", 8080, False), ("kernel", "udp", 8053, False), ("sidecar", "tcp", 8070, False),
            ("sidecar", "udp", 8073, False)], info
    assert info["engine"]["rootless"] is True and info["engine"]["port_driver"] == "builtin", info["engine"]


def test_the_mapping_follows_the_container_to_a_new_address(host):
    """web comes back at a new address while thief takes its old one: the reconciler (started by
    prepare.yml, as hp) sees web start and moves the mapping, so the thief is never served for
    long; a re-run then finds nothing to do."""
    address = dind_address(host)
    old = host.check_output(DOCKER + "inspect -f '{{(index .NetworkSettings.Networks \"hp-net\").IPAddress}}' web")
    host.check_output(DOCKER + "stop -t 1 web")
    host.check_output(DOCKER + "run -d --name thief --network hp-net --ip %s hotport/target /bin/busybox sh -c "
                      "'busybox mkdir /t; echo thief > /t/index.html; exec busybox httpd -f -p 80 -h /t'" % old)
    host.check_output(DOCKER + "start web")
    try:
        new = host.check_output(DOCKER + "inspect -f '{{(index .NetworkSettings.Networks \"hp-net\").IPAddress}}' web")
        assert new != old
        assert eventually(lambda: "--to-destination %s:80" % new in namespace_rules(host), True, timeout=20), \
            host.run("tail -20 /tmp/rl-run/reconcile.log").stdout
        assert tcp_get(address, 8080) == PAYLOAD
        assert_udp_answers(host, address, 8053)
        assert kernel(host, ports=KERNEL).get("changed") is False
    finally:
        host.run(DOCKER + "rm -f thief")


def restart_engine(host):
    """Kill RootlessKit (this scenario's own process, by its PID: molecule.yml starts it, and starts
    it again) -> once the new engine answers."""
    old_pid = host.check_output("cat %s/child_pid" % STATE)
    host.check_output("kill $(awk '/^PPid/ {print $2}' /proc/%s/status)" % old_pid)

    def back():
        return host.run("test \"$(cat %s/child_pid 2>/dev/null)\" != %s && %s info -f '{{.ID}}'"
                        % (STATE, old_pid, DOCKER)).rc == 0

    assert eventually(back, True, timeout=90), "the rootless engine did not come back"


def test_the_reconciler_restores_both_halves_after_the_engine_restarts(host):
    """RootlessKit's ports live in its memory and the namespace is new: the reconciler, running as
    hp, writes the rules and the ports again once the engine is back."""
    address = dind_address(host)
    restart_engine(host)
    answer = eventually(lambda: tcp_get(address, 8080), PAYLOAD, timeout=60)
    assert answer == PAYLOAD, (answer, host.run("tail -20 /tmp/rl-run/reconcile.log").stdout, ports(host))
    assert_udp_answers(host, address, 8053, timeout=30)
    assert tcp_get(address, 9090) == PAYLOAD  # Docker's own twin is back too
    assert kernel(host, ports=KERNEL).get("changed") is False


BAD = [
    ("allowed_sources", dict(ports=["8081:80"], allowed_sources=["10.0.0.0/8"]), "client's address is lost"),
    ("a port Docker publishes", dict(ports=["9090:80"]), "already published"),
    ("a port a sidecar publishes", dict(ports=["8070:80"]), "already published"),
    ("a port RootlessKit forwards for another program", dict(ports=["7777:80"]), "already published"),
    ("IPv6", dict(ports=["[::]:8082:80"]), "IPv6"),
    ("an unknown container", dict(ports=["8083:80"], container="nosuch"), "not found"),
]


def test_bad_inputs_are_refused_by_name_with_nothing_changed(host):
    host.check_output("rootlessctl --socket %s/api.sock add-ports 0.0.0.0:7777:10.0.2.100:7777/tcp" % STATE)
    try:
        before = (namespace_rules(host), ports(host), containers(host))
        for name, args, message in BAD:
            args = dict(dict(container="web", docker_host=SOCKET, state_file=STATE_FILE), **args)
            refused = hotport(host, **args)
            assert message in refused.get("msg", ""), (name, refused)
            assert (namespace_rules(host), ports(host), containers(host)) == before, name
    finally:
        for entry in host.check_output("rootlessctl --socket %s/api.sock list-ports" % STATE).splitlines()[1:]:
            if ":7777" in entry:
                host.check_output("rootlessctl --socket %s/api.sock remove-ports %s" % (STATE, entry.split()[0]))


def test_absent_leaves_no_port_no_rule_and_no_sidecar(host):
    address = dind_address(host)
    removed = kernel(host, state="absent")
    assert removed.get("changed"), removed
    assert "hotport:" not in namespace_rules(host)
    assert not [entry for entry in ports(host) if ":8080 " in entry or ":8053 " in entry], ports(host)
    assert tcp_get(address, 8080) is None
    gone = hotport(host, container="web", state="absent", method="sidecar", docker_host=SOCKET)
    assert gone.get("changed"), gone
    assert [name for name in containers(host) if name.startswith("hotport-")] == []
    assert tcp_get(address, 9090) == PAYLOAD


def test_the_nftables_backend_of_a_rootless_engine_works_alike(host):
    """The same engine restarted with its nftables firewall backend and the accept mark: hotport's
    nftables publisher in the namespace, RootlessKit's ports as before."""
    host.check_output("mkdir -p ~/.config/docker && echo '{\"firewall-backend\": \"nftables\", "
                      "\"bridge-accept-fwmark\": \"0x4000000/0x4000000\"}' > ~/.config/docker/daemon.json")
    try:
        restart_engine(host)
        assert host.check_output(DOCKER + "info -f '{{.FirewallBackend.Driver}}'") == "nftables"
        address = dind_address(host)
        mapped = kernel(host, ports=["8090:80", "8093:53/udp"])
        assert mapped.get("changed") and mapped["engine"]["publisher"] == "nftables", mapped
        assert eventually(lambda: tcp_get(address, 8090), PAYLOAD, timeout=10) == PAYLOAD
        assert_udp_answers(host, address, 8093)
        assert kernel(host, ports=["8090:80", "8093:53/udp"]).get("changed") is False
        removed = kernel(host, ports=["8090:80", "8093:53/udp"], state="absent")
        assert removed.get("changed"), removed
        assert not [entry for entry in ports(host) if ":8090 " in entry or ":8093 " in entry], ports(host)
        assert tcp_get(address, 8090) is None
    finally:
        host.run("rm -f ~/.config/docker/daemon.json")


def test_the_reconciler_stops_with_the_scenario(host):
    """Ends the reconciler prepare.yml started, by its PID."""
    host.check_output("kill $(cat /tmp/rl-run/reconcile.pid)")
