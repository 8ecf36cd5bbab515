"""method: sidecar on this host's engine: a proxy container that Docker itself publishes, followed
through restarts, removed by absent, and refused inputs that leave every container as it was.
The sidecars run hotport/target, which has socat (no registry here)."""
import time

import pytest

from .conftest import IMAGE, PAYLOAD, docker, fetch, fetch_udp, module, ruleset

SIDECAR = dict(method="sidecar", sidecar_image=IMAGE)


def sidecars(target):
    """Names of the sidecars serving ``target``, running or not."""
    return sorted(docker("ps", "-a", "--filter", "label=io.hotport.target.name=" + target,
                         "--format", "{{.Names}}").split())


def once_bound(probe, port):
    """The answer of a new sidecar. Docker has started it when the module returns, and socat binds
    its port a moment later: a first UDP datagram may meet nothing there yet (seen once in CI)."""
    for dummy in range(10):
        answer = probe(port)
        if answer is not None:
            return answer
        time.sleep(0.3)
    return None


def every_container():
    """The containers tests and sidecars make here (others, e.g. a Molecule run's, may come and go)."""
    return sorted(line for line in docker("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.State}} {{.Ports}}").splitlines()
                  if line.split()[1].startswith(("hp-e2e-", "hotport-hp-e2e-")))


@pytest.fixture
def sidecar_cleanup():
    """Remove, after the test, every sidecar of the targets it names."""
    targets = []
    yield targets.append
    for target in targets:
        for name in sidecars(target):
            docker("rm", "-f", name, check=False)


def test_a_sidecar_publishes_a_running_container_and_absent_removes_it(containers, sidecar_cleanup):
    web = containers()
    sidecar_cleanup(web)
    assert fetch(18080) is None
    planned = module(container=web, ports=["18080:80", "18053:53/udp"], check=True, diff=True, **SIDECAR)
    assert planned["changed"] and sidecars(web) == [], planned
    assert [line for line in planned["diff_lines"] if line.startswith("+") and not line.startswith("+++")] == [
        "+" + text for text in planned["rules"]["added"]]
    mapped = module(container=web, ports=["18080:80", "18053:53/udp"], **SIDECAR)
    assert mapped["changed"] and not mapped["failed"], mapped
    assert mapped["engine"]["publisher"] == "sidecar"
    assert sidecars(web) == ["hotport-%s-tcp-18080" % web, "hotport-%s-udp-18053" % web]
    assert once_bound(fetch, 18080) == PAYLOAD and once_bound(fetch_udp, 18053) == PAYLOAD
    for name in sidecars(web):  # socat runs as nobody, with no capability and nothing to write
        status = open("/proc/%s/status" % docker("inspect", "-f", "{{.State.Pid}}", name)).read()
        assert "\nUid:\t65534\t65534\t65534\t65534\n" in status and "\nCapEff:\t0000000000000000\n" in status
        assert "\nNoNewPrivs:\t1\n" in status
        assert docker("inspect", "-f", "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.PidsLimit}}", name) == "true 1024"
    again = module(container=web, ports=["18080:80", "18053:53/udp"], **SIDECAR)
    assert again["changed"] is False and again["rules"] == {"added": [], "removed": []}, again
    restart = docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", sidecars(web)[0])
    assert restart == "unless-stopped"
    info = module(module_name="hotport.docker.container_port_map_info", container=web)["mappings"]
    assert [(item["method"], item["host_port"], item["stale"]) for item in info] == [
        ("sidecar", 18080, False), ("sidecar", 18053, False)]
    # Docker publishes the sidecars' ports: listed once each, as the sidecar, not also as Docker's.
    everything = module(module_name="hotport.docker.container_port_map_info", timeout=60)["mappings"]
    assert [(item["owner"], item["method"], item["sidecar"]) for item in everything if item["host_port"] == 18080] \
        == [("hotport", "sidecar", "hotport-%s-tcp-18080" % web)]
    removed = module(container=web, state="absent", **SIDECAR)
    assert removed["changed"] and sidecars(web) == []
    assert fetch(18080) is None


def test_on_a_user_defined_network_the_sidecar_follows_the_container_by_name(containers, network, sidecar_cleanup):
    net = network()
    web = containers("--network", net)
    sidecar_cleanup(web)
    assert module(container=web, ports=["18081:80"], **SIDECAR)["changed"]
    assert once_bound(fetch, 18081) == PAYLOAD
    old = docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % net, web)
    docker("stop", "-t", "1", web)
    thief = containers("--network", net, command=["/bin/busybox", "sh", "-c",
                                                  "busybox mkdir /t; echo thief > /t/index.html; "
                                                  "exec busybox httpd -f -p 80 -h /t"])
    docker("start", web)
    assert docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % net, thief) == old
    assert fetch(18081) == PAYLOAD, "no re-run: Docker's DNS took the sidecar to the container's new address"


def test_on_the_default_bridge_a_rerun_follows_the_new_address(containers, sidecar_cleanup):
    web = containers()
    sidecar_cleanup(web)
    module(container=web, ports=["18082:80"], **SIDECAR)
    docker("stop", "-t", "1", web)
    containers(command=["/bin/busybox", "sh", "-c",
                        "busybox mkdir /t; echo thief > /t/index.html; exec busybox httpd -f -p 80 -h /t"])
    docker("start", web)
    assert fetch(18082) == "thief"  # the trap of forwarding by address
    [stale] = module(module_name="hotport.docker.container_port_map_info", container=web)["mappings"]
    assert stale["stale"] and stale["stale_reason"].startswith("address changed")
    moved = module(container=web, ports=["18082:80"], **SIDECAR)
    assert moved["changed"] and len(moved["rules"]["removed"]) == len(moved["rules"]["added"]) == 1
    assert once_bound(fetch, 18082) == PAYLOAD


@pytest.mark.parametrize("case, args, message", [
    ("missing image", dict(sidecar_image="hotport/no-such-image:0"), "sidecar_image 'hotport/no-such-image:0' is not on this engine"),
    ("sources", dict(allowed_sources=["198.18.0.2"]), "allowed_sources cannot be enforced with method: sidecar"),
])
def test_refused_inputs_change_no_container(containers, sidecar_cleanup, case, args, message):
    web = containers()
    sidecar_cleanup(web)
    before = every_container()
    refused = module(container=web, ports=["18083:80"], **dict(SIDECAR, **args))
    assert refused["failed"] and message in refused["msg"], refused
    assert every_container() == before


def test_ports_docker_or_kernel_rules_publish_and_a_name_another_container_holds_are_refused(
        containers, sidecar_cleanup):
    web = containers()
    sidecar_cleanup(web)
    containers("-p", "18084:80")
    squatter = containers(name="hotport-%s-tcp-18085" % web)
    kernel = containers()
    assert module(container=kernel, ports=["18086:80"])["changed"]
    before = every_container()
    rules = ruleset()
    taken = module(container=web, ports=["18084:80"], **SIDECAR)
    assert taken["failed"] and "18084:80/tcp is already published by Docker (container " in taken["msg"], taken
    clash = module(container=web, ports=["18085:80"], **SIDECAR)
    assert clash["failed"] and "a container named %r exists" % squatter in clash["msg"], clash
    mapped = module(container=web, ports=["18086:80"], **SIDECAR)
    assert mapped["failed"] and "host port 18086/tcp is mapped by hotport's kernel rules" in mapped["msg"], mapped
    assert every_container() == before and ruleset() == rules
    assert module(container=web, ports=["18087:80"], **SIDECAR)["changed"]
    behind = module(container=kernel, ports=["18087:80"])  # and the other way round
    assert behind["failed"] and "18087:80/tcp is already published by Docker" in behind["msg"], behind


def test_an_image_without_socat_is_refused_and_what_the_run_did_is_undone(containers, sidecar_cleanup):
    web = containers()
    sidecar_cleanup(web)
    builder = containers(command=["/bin/busybox", "rm", "/bin/socat"])
    docker("wait", builder)
    docker("commit", builder, "hotport/e2e-no-socat")
    try:
        before = every_container()
        no_socat = {"method": "sidecar", "sidecar_image": "hotport/e2e-no-socat"}
        refused = module(container=web, ports=["18088:80"], **no_socat)
        assert refused["failed"] and "has no socat on its PATH" in refused["msg"], refused
        assert "Everything was undone" in refused["msg"] and every_container() == before
    finally:
        docker("rmi", "-f", "hotport/e2e-no-socat", check=False)
