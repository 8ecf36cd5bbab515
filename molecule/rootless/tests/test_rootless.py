"""Verify hotport with rootless Docker 29.7.2 (testinfra; Ansible connects as the ordinary user hp
and talks only to the engine's API socket). Tests run in file order."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from probes import PAYLOAD, dind_address, hotport, tcp_get, udp_ask  # noqa: E402

SOCKET = "unix:///tmp/rl-run/docker.sock"
DOCKER = "DOCKER_HOST=%s docker " % SOCKET


def sidecars(host):
    return host.check_output(DOCKER + "ps -a --filter label=io.hotport.sidecar --format '{{.Names}}'").split()


def test_the_engine_is_rootless_and_ansible_is_not_root(host):
    assert host.check_output("id -u") == "1000"
    assert "name=rootless" in host.check_output(DOCKER + "info -f '{{json .SecurityOptions}}'")


def test_the_kernel_method_is_refused_by_name_with_nothing_changed(host):
    before = host.check_output(DOCKER + "ps -a --format '{{.ID}} {{.Names}} {{.State}}'")
    refused = hotport(host, container="web", ports=["8081:80"], docker_host=SOCKET)
    message = refused.get("msg", "")
    assert "runs rootless" in message and "method: sidecar" in message, refused
    assert host.check_output(DOCKER + "ps -a --format '{{.ID}} {{.Names}} {{.State}}'") == before


def test_the_sidecars_answer_from_outside_like_the_p_twin(host):
    address = dind_address(host)
    assert tcp_get(address, 9090) == PAYLOAD  # Docker's own -p, through RootlessKit
    assert tcp_get(address, 8080) == PAYLOAD
    assert udp_ask(address, 8053) == PAYLOAD
    assert sorted(sidecars(host)) == ["hotport-web-tcp-8080", "hotport-web-udp-8053"]


def test_a_rerun_is_a_no_op(host):
    again = hotport(host, container="web", ports=["8080:80", "8053:53/udp"], method="sidecar",
                    sidecar_image="hotport/target", docker_host=SOCKET)
    assert again.get("changed") is False, again


def test_the_info_module_lists_the_sidecars_without_root(host):
    info = host.ansible("hotport.docker.container_port_map_info", "docker_host=%s" % SOCKET, check=False)
    assert sorted((item["method"], item["host_port"], item["stale"]) for item in info["mappings"]) == [
        ("sidecar", 8053, False), ("sidecar", 8080, False)], info


def test_absent_leaves_no_sidecar(host):
    removed = hotport(host, container="web", state="absent", method="sidecar", docker_host=SOCKET)
    assert removed.get("changed"), removed
    assert sidecars(host) == []
    assert tcp_get(dind_address(host), 9090) == PAYLOAD and tcp_get(dind_address(host), 8080) is None
