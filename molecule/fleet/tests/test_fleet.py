"""Verify the fleet rollout (testinfra, once per Docker-in-Docker host).

Every mapped port is probed from this controller; each container serves a page naming its
host, so an answer proves the right host and container. The stop-on-failure test runs
rollout.yml again with a mapping that fails on one host; the report test runs report.yml on the
fleet with one container stopped.
"""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from probes import ROOT, dind_address, reconciler_pids, tcp_get, udp_ask, uses_systemd  # noqa: E402

FIRST_HOST = "hp-fleet-bookworm"


def name(host):
    return host.backend.get_hostname()


def test_every_mapped_port_answers_from_the_controller(host):
    address = dind_address(host)
    assert tcp_get(address, 8080) == "web@" + name(host)
    assert udp_ask(address, 8053) == "web@" + name(host)
    assert tcp_get(address, 8081) == "api@" + name(host)
    assert tcp_get(address, 8084) is None, "bound to the host's loopback"
    assert tcp_get(address, 8085) is None, "narrowed to sources this controller is not one of"
    assert host.check_output("curl -sS -m 3 http://127.0.0.1:8084/") == "web@" + name(host)


def test_the_reconciler_runs(host):
    if uses_systemd(host):
        service = host.service("hotport-reconcile")
        assert service.is_enabled and service.is_running
    assert len(reconciler_pids(host)) == 1


def test_the_state_file_holds_the_mappings(host):
    state = json.loads(host.file("/etc/hotport/mappings.json").content_string)
    assert state["mappings"] == [
        {"container": "api", "network": "hp-net", "ports": ["8081:80/tcp", {
            "host_port": 8085, "container_port": 80, "protocol": "tcp", "allowed_sources": ["198.18.0.0/30"],
            "local_access": False}]},
        {"container": "web", "network": None, "ports": ["8080:80/tcp", {
            "host_ip": "127.0.0.1", "host_port": 8084, "container_port": 80, "protocol": "tcp", "allowed_sources": [],
            "local_access": True}, "8053:53/udp"]},
    ]


def test_info_lists_our_mappings_complete_and_current(host):
    info = host.ansible("hotport.docker.container_port_map_info", "owner=hotport", check=False)
    found = sorted((item["host_port"], item["container"]["name"], item["stale"], item["complete"])
                   for item in info["mappings"])
    assert found == [(8053, "web", False, True), (8080, "web", False, True), (8081, "api", False, True),
                     (8084, "web", False, True), (8085, "api", False, True)]


def run_playbook(playbook, *extra_vars):
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
               os.path.join(ROOT, "playbooks", playbook)]
    for extra in extra_vars:
        command += ["-e", extra]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))


def test_a_failing_host_stops_the_rollout(host):
    """One batch per host; the mapping fails on FIRST_HOST (no such container): hosts after it
    are left untouched, the summary names each host's fate, and the run fails."""
    if name(host) != FIRST_HOST:
        pytest.skip("runs once, for the whole fleet")
    mappings = ('{"port_map_mappings": "{{ [{\'container\': \'ghost\' if inventory_hostname == \'%s\' '
                'else \'web\', \'ports\': [\'8082:80\']}] }}"}' % FIRST_HOST)
    result = run_playbook("rollout.yml", "batch=1", mappings)
    assert result.returncode != 0, result.stdout
    summary = result.stdout[result.stdout.index("Summary, host by host"):]
    assert "%s: FAILED at 'Apply the mappings'" % FIRST_HOST in summary
    assert "container 'ghost' not found" in summary
    hosts = ["hp-fleet-bookworm", "hp-fleet-trixie", "hp-fleet-sid", "hp-fleet-sid29"]
    order = sorted(hosts, key=lambda other: summary.index(other + ": "))
    later = order[order.index(FIRST_HOST) + 1:]
    assert later, "the failing host should not be the last of the rollout"
    for other in later:
        assert "%s: skipped: the rollout stopped" % other in summary
        address = subprocess.check_output(
            ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", other],
            text=True).strip()
        assert tcp_get(address, 8080) == "web@" + other  # the probe works on this host ...
        assert tcp_get(address, 8082) is None, "%s was changed after the rollout stopped" % other


def test_the_rollout_probes_each_mapping_where_it_can_answer(host):
    """From the controller where it can answer; loopback from the host; narrowed ones skipped with
    the reason; a per-port override (the controller cannot reach 8081 here once told so)."""
    if name(host) != FIRST_HOST:
        pytest.skip("runs once, for the whole fleet")
    result = run_playbook("rollout.yml", "target=" + FIRST_HOST)
    assert result.returncode == 0, result.stdout[-3000:]
    probes = result.stdout[result.stdout.index("Probe each mapped TCP port"):].split("TASK [")[0]
    address = dind_address(host)
    assert "ok: [%s -> localhost] => (item=0.0.0.0:8080 from controller at %s)" % (FIRST_HOST, address) in probes
    assert "ok: [%s] => (item=127.0.0.1:8084 from host at 127.0.0.1)" % FIRST_HOST in probes
    assert "skipping: [%s] => (item=0.0.0.0:8085 skipped: only 198.18.0.0/30 may connect)" % FIRST_HOST in probes
    told = run_playbook("rollout.yml", "target=" + FIRST_HOST, '{"rollout_probe_overrides": {"8081": "skip"}}')
    assert "(item=0.0.0.0:8081 skipped (rollout_probe_overrides))" in told.stdout, told.stdout[-3000:]


def test_the_report_lists_every_mapping_of_the_fleet_with_its_state(host, tmp_path):
    """Every host's mappings in the Markdown file and on the console; those of a container stopped
    while the reconciler was down (it would remove them) are stale."""
    if name(host) != FIRST_HOST:
        pytest.skip("runs once, for the whole fleet")
    assert uses_systemd(host)
    report = str(tmp_path / "report.md")
    host.check_output("systemctl stop hotport-reconcile && docker stop -t 1 api")
    try:
        result = run_playbook("report.yml", "report_file=" + report, "report_owner=hotport")
    finally:
        host.check_output("docker start api && systemctl start hotport-reconcile")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "20 mapping(s) on 4 host(s): 2 stale or incomplete, 0 clashing; 0 host(s) not read" in result.stdout
    with open(report) as handle:
        rows = [line for line in handle.read().splitlines() if line.startswith("| hp-fleet-")]
    assert len(rows) == 20
    for other in ("hp-fleet-bookworm", "hp-fleet-trixie", "hp-fleet-sid", "hp-fleet-sid29"):
        expected_api = "stale: container stopped" if other == FIRST_HOST else "ok"
        assert "| %s | kernel | 0.0.0.0:8081/tcp | api:80 | hotport | - | %s |" % (other, expected_api) in rows
        assert "| %s | kernel | 127.0.0.1:8084/tcp | web:80 | hotport | - | ok |" % other in rows
        assert "| %s | kernel | 0.0.0.0:8053/udp | web:53 | hotport | - | ok |" % other in rows
