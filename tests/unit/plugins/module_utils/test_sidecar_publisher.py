"""The sidecar publisher's part in a run (a fake Docker API in memory, pure logic): which
containers are provably hotport's sidecars, and what a new one runs with."""
import fcntl
import signal

import pytest

from ansible_collections.hotport.docker.plugins.module_utils import apply
from ansible_collections.hotport.docker.plugins.module_utils.docker_api import DockerError, EngineInfo, Endpoint
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.planner import ConflictError, MappingRequest
from ansible_collections.hotport.docker.plugins.module_utils.publishers.sidecar import (
    LABEL, NOBODY, Sidecar, SidecarError, SidecarPublisher)

WEB = Endpoint("a" * 64, "web", "172.17.0.2", "bridge", "docker0")


class Client:
    """The Docker API calls a sidecar run makes, answered from memory: ``listed`` container
    summaries, ``images`` {image ID: its labels}."""

    def __init__(self, listed=(), images=None, refuse_creates=0):
        self.listed = list(listed)
        self.images = images or {}
        self.refuse_creates = refuse_creates  # how many creates fail before they succeed
        self.created, self.configs, self.removed = [], [], []

    def containers(self):
        return self.listed

    def inspect_image(self, image):
        return {"Config": {"Labels": self.images.get(image)}}

    def create_container(self, name, config):
        if self.refuse_creates:
            self.refuse_creates -= 1
            raise DockerError(409, "Conflict: the engine refused the container")
        self.created.append(name)
        self.configs.append(config)
        return "f" * 64

    def start(self, container_id):
        pass

    def remove_container(self, container):
        self.removed.append(container)


def sidecar_summary(image_id="sha256:plain", command=None, **changed):
    """A container carrying exactly the labels hotport writes for web's 8080:80, published on 8080."""
    sidecar = Sidecar(4, "tcp", "", 8080, 80, WEB.container_id, "web", "bridge", "172.17.0.2", "hotport/target")
    summary = {"Id": "e" * 64, "Names": ["/" + sidecar.container_name()], "Image": "hotport/target",
               "ImageID": image_id, "Command": command or " ".join(["socat"] + sidecar.command()),
               "Labels": sidecar.labels(), "State": "running",
               "Ports": [{"PublicPort": 8080, "PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0"}],
               "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.9"}}}}
    summary.update(changed)
    return summary


def run(client, state="present", ports=("8080:80",), exists=lambda container_id: True, endpoint=WEB):
    request = MappingRequest(endpoint, tuple(parse_ports(list(ports))), state, container_exists=exists)
    return apply.reconcile(None, EngineInfo("20.10.24", "1.41", "iptables"), SidecarPublisher(client, "hotport/target"),
                           request)


def test_a_sidecar_hotport_made_is_adopted():
    client = Client([sidecar_summary()])
    assert run(client).changed is False and client.created == [] and client.removed == []


@pytest.mark.parametrize("imposter", [
    dict(image_id="sha256:labelled"),  # its labels come from its image
    dict(command="socat TCP-LISTEN:80,fork,reuseaddr TCP-CONNECT:203.0.113.9:80"),
    dict(Names=["/innocent"]),
])
def test_a_container_with_hotports_labels_is_not_hotports(imposter):
    client = Client([sidecar_summary(**imposter)], images={"sha256:labelled": {LABEL: "x", "io.hotport.family": "4"}})
    with pytest.raises((SidecarError, ConflictError), match="not one of hotport's sidecars|already published"):
        run(client)
    run(client, state="absent", ports=())
    run(client, state="absent", ports=("8080:80",))
    assert client.created == [] and client.removed == []


def test_a_foreign_service_labelled_for_a_removed_target_is_not_taken_over():
    client = Client([sidecar_summary(image_id="sha256:labelled")], images={"sha256:labelled": {LABEL: "x"}})
    with pytest.raises(ConflictError, match="already published"):
        run(client, ports=("8080:80",), exists=lambda container_id: False)
    assert client.removed == []


def test_a_new_sidecar_runs_as_nobody_with_nothing_granted():
    client = Client()
    run(client)
    [config] = client.configs
    host = config["HostConfig"]
    assert config["User"] == NOBODY and host["CapDrop"] == ["ALL"] and "CapAdd" not in host
    assert host["ReadonlyRootfs"] is True and host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["PidsLimit"] > 0 and host["Memory"] > 0


class KernelPublisher:
    """A kernel publisher that sees no mapping."""

    def read(self):
        return Snapshot()


class Snapshot:
    def families(self):
        return set()


def never(*args):
    raise AssertionError("a sidecar run looked at the host's sockets or addresses")


def test_a_sidecar_run_that_sees_a_kernel_publisher_takes_no_host_lock_and_checks_no_socket(tmp_path, monkeypatch):
    monkeypatch.setattr(apply, "listeners", never)
    monkeypatch.setattr(apply, "interface_addresses", never)
    client = Client()
    publisher = SidecarPublisher(client, kernel_publisher=KernelPublisher())
    assert publisher.kernel is False
    lock = tmp_path / "lock"
    with open(str(lock), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another hotport run holds the host lock

        def stuck(*args):
            raise AssertionError("the sidecar run waited for the host lock")

        previous = signal.signal(signal.SIGALRM, stuck)
        signal.alarm(5)
        try:
            outcome = apply.reconcile(None, EngineInfo("29.7.2", "1.55", "iptables"), publisher,
                                      MappingRequest(WEB, tuple(parse_ports(["8080:80"]))), lock_path=str(lock))
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    assert outcome.changed and client.created == ["hotport-web-tcp-8080"]


def test_a_sidecar_whose_target_moved_is_replaced():
    client = Client([sidecar_summary()])
    moved = Endpoint(WEB.container_id, "web", "172.17.0.3", "bridge", "docker0")
    assert run(client, endpoint=moved).changed
    assert client.removed == ["e" * 64] and client.configs[0]["Cmd"][1] == "TCP-CONNECT:172.17.0.3:80"


def test_a_udp_sidecar_relays_udp():
    client = Client()
    run(client, ports=("5353:53/udp",))
    config = client.configs[0]
    assert config["Cmd"] == ["UDP-RECVFROM:53,fork,reuseaddr", "UDP-SENDTO:172.17.0.2:53"]
    assert list(config["ExposedPorts"]) == ["53/udp"] and list(config["HostConfig"]["PortBindings"]) == ["53/udp"]


def test_a_failed_create_puts_back_the_sidecar_it_replaced():
    client = Client([sidecar_summary()], refuse_creates=1)
    with pytest.raises(SidecarError, match="Everything was undone; nothing was changed"):
        run(client, ports=("8080:81",))
    old = Sidecar(4, "tcp", "", 8080, 80, WEB.container_id, "web", "bridge", "172.17.0.2", "hotport/target")
    assert client.removed == ["e" * 64] and client.created == [old.container_name()]
    assert client.configs[0]["Cmd"] == old.command() and client.configs[0]["Labels"] == old.labels()
