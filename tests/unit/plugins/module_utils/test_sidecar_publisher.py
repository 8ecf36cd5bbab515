"""The sidecar publisher's part in a run (a fake Docker API in memory, pure logic)."""
import fcntl
import signal

from ansible_collections.hotport.docker.plugins.module_utils import apply
from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo, Endpoint
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.publishers.sidecar import SidecarPublisher

WEB = Endpoint("a" * 64, "web", "172.17.0.2", "bridge", "docker0")


class Client:
    """The Docker API calls a sidecar run makes, answered from memory."""

    def __init__(self):
        self.created = []

    def containers(self):
        return []

    def inspect_image(self, image):
        return {}

    def create_container(self, name, config):
        self.created.append(name)
        return "f" * 64

    def start(self, container_id):
        pass


class KernelPublisher:
    """A kernel publisher that sees no mapping."""

    def read(self):
        return None

    def families(self, live):
        return set()


def never(*args):
    raise AssertionError("a sidecar run looked at the host's sockets or addresses")


def test_a_sidecar_run_that_sees_a_kernel_publisher_takes_no_host_lock_and_checks_no_socket(tmp_path, monkeypatch):
    monkeypatch.setattr(apply, "listeners", never)
    monkeypatch.setattr(apply, "local_addresses", never)
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
            outcome = apply.reconcile(None, WEB, EngineInfo("29.7.2", "1.55", "iptables"), parse_ports(["8080:80"]),
                                      publisher=publisher, lock_path=str(lock))
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    assert outcome.changed and client.created == ["hotport-web-tcp-8080"]
