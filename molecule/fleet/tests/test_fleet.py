"""Verify the fleet rollout (testinfra, once per Docker-in-Docker host).

Every mapped port is probed from this controller; each container serves a page naming its
host, so an answer proves the right host and container. The stop-on-failure test runs
rollout.yml again with a mapping that fails on one host.
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


def test_the_reconciler_runs(host):
    if uses_systemd(host):
        service = host.service("hotport-reconcile")
        assert service.is_enabled and service.is_running
    assert len(reconciler_pids(host)) == 1


def test_the_state_file_holds_the_mappings(host):
    state = json.loads(host.file("/etc/hotport/mappings.json").content_string)
    assert state["mappings"] == [
        {"container": "api", "network": "hp-net", "ports": ["8081:80/tcp"]},
        {"container": "web", "network": None, "ports": ["8080:80/tcp", "8053:53/udp"]},
    ]


def test_info_lists_our_mappings_complete_and_current(host):
    info = host.ansible("hotport.docker.container_port_map_info", "owner=hotport", check=False)
    found = sorted((item["host_port"], item["container"]["name"], item["stale"], item["complete"])
                   for item in info["mappings"])
    assert found == [(8053, "web", False, True), (8080, "web", False, True), (8081, "api", False, True)]


def rollout(*extra_vars):
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
               os.path.join(ROOT, "playbooks", "rollout.yml")]
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
    result = rollout("batch=1", mappings)
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
