"""A hostile engine (tests/fake_engine.py, on a unix socket) against the module's own code path
(desired.apply_request) with real iptables and nft in throwaway namespaces: every answer that
could write a rule hotport did not mean, or point a DNAT anywhere but at a container inside its
network, is refused with a message naming it, the ruleset byte-identical and no write sent to the
engine. Both kernel publishers and the sidecar method."""
import pytest

from ansible_collections.hotport.docker.plugins.module_utils import docker_api, docker_client
from ansible_collections.hotport.docker.plugins.module_utils.desired import apply_request

from ..fake_engine import NETWORK_ID, WEB_ID, FakeEngine, container, network
from .conftest import Host, NftHost
from .test_nftables_netns import ENGINE as NFT_ENGINE

IPTABLES_ENGINE = docker_api.EngineInfo("20.10.24", "1.41", "iptables")
CONTAINER = "/containers/web/json"
NETWORK = "/networks/%s" % NETWORK_ID
BAD_BRIDGE = "cannot write into a firewall rule safely"
OUTSIDE = "outside its network"
RESERVED = "the gateway or a reserved address"
NOT_JSON = "with something that is not JSON"

# (id, what the engine answers differently, the fragment the refusal must hold)
HOSTILE = [
    ("bridge-quote-hash", {NETWORK: network(bridge='sr"drop#')}, BAD_BRIDGE),
    ("bridge-braces", {NETWORK: network(bridge="a}b{")}, BAD_BRIDGE),
    ("bridge-semicolon", {NETWORK: network(bridge="x;y")}, BAD_BRIDGE),
    ("bridge-backslash", {NETWORK: network(bridge="back\\slash")}, BAD_BRIDGE),
    ("bridge-space", {NETWORK: network(bridge="br -j DROP")}, BAD_BRIDGE),
    ("bridge-newline", {NETWORK: network(bridge="br\nCOMMIT")}, BAD_BRIDGE),
    ("bridge-too-long", {NETWORK: network(bridge="b" * 16)}, BAD_BRIDGE),
    ("id-not-hex", {CONTAINER: dict(container(), Id="web; rm -rf /")}, "not 64 hex digits"),
    ("id-short", {CONTAINER: dict(container(), Id="abcdef")}, "not 64 hex digits"),
    ("name-quote", {CONTAINER: dict(container(), Name='/we"b')}, "container name Docker never gives"),
    ("network-name", {CONTAINER: container(network='net"x')}, "network name Docker never gives"),
    ("address-loopback", {CONTAINER: container(ip="127.0.0.1")}, OUTSIDE),
    ("address-unspecified", {CONTAINER: container(ip="0.0.0.0")}, OUTSIDE),
    ("address-multicast", {CONTAINER: container(ip="224.0.0.1")}, OUTSIDE),
    ("address-host", {CONTAINER: container(ip="198.18.0.1")}, OUTSIDE),
    ("address-elsewhere", {CONTAINER: container(ip="10.9.9.9")}, OUTSIDE),
    ("address-gateway", {CONTAINER: container(ip="172.17.0.1")}, RESERVED),
    ("address-broadcast", {CONTAINER: container(ip="172.17.255.255")}, RESERVED),
    ("address-text", {CONTAINER: container(ip="172.17.0.2 -j ACCEPT")}, "which is no IPv4 address"),
    ("address-v6-as-v4", {CONTAINER: container(ip="fd00::2")}, "which is no IPv4 address"),
    ("subnet-covers-all", {NETWORK: network(subnets=(("0.0.0.0/0", "172.17.0.1"),)),
                           CONTAINER: container(ip="198.18.0.1")}, "check which engine"),
    ("no-subnets", {NETWORK: network(subnets=())}, OUTSIDE),
    ("malformed-json", {CONTAINER: b'{"Id": '}, NOT_JSON),
    ("deep-json", {CONTAINER: b"[" * 200000 + b"]" * 200000}, NOT_JSON),
    ("wrong-shapes", {CONTAINER: dict(container(), NetworkSettings=["not", "a", "dict"])}, "is malformed"),
    ("state-a-list", {CONTAINER: dict(container(), State=[1])}, "is malformed"),
]


@pytest.fixture
def engine(tmp_path):
    fake = FakeEngine(tmp_path)
    yield fake
    fake.close()


@pytest.fixture(params=["iptables", "nftables", "sidecar"])
def target(request):
    """(namespace, engine facts, method) of each publisher."""
    host = NftHost() if request.param == "nftables" else Host("nft", "docker28")
    yield host, (NFT_ENGINE if request.param == "nftables" else IPTABLES_ENGINE), (
        "sidecar" if request.param == "sidecar" else "kernel")
    host.close()


def snapshot(host):
    return host.ruleset() if isinstance(host, NftHost) else host.save()


@pytest.mark.parametrize("case, answers, message", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_a_hostile_answer_is_refused_and_changes_nothing(engine, target, case, answers, message):
    host, facts, method = target
    if case == "subnet-covers-all" and method == "sidecar":
        pytest.skip("only this host's bridge can tell; a sidecar forwards inside the engine, which could "
                    "send its own containers' packets anywhere anyway")
    engine.answers.update(answers)
    before = snapshot(host)
    client = docker_api.connect(engine.url, 5)
    with pytest.raises((docker_api.ResolveError, docker_client.DockerError)) as raised:
        apply_request(host.runner, client, facts, {"container": "web", "ports": ["8080:80"], "method": method})
    assert message in str(raised.value)
    assert snapshot(host) == before
    assert engine.writes() == []


def test_the_plain_answers_map(engine, target, tmp_path):
    """The fake engine's plain answers do map (with the iptables publishers): the refusals above
    are the hostile values', not the fake's."""
    host, facts, method = target
    if method == "sidecar":
        pytest.skip("the fake engine does not run sidecars")
    client = docker_api.connect(engine.url, 5)
    endpoint, outcome = apply_request(host.runner, client, facts, {"container": "web", "ports": ["8080:80"]})
    assert endpoint.container_id == WEB_ID and endpoint.ip == "172.17.0.2" and outcome.changed


def test_a_huge_answer_is_refused(engine, monkeypatch):
    monkeypatch.setattr(docker_client, "ANSWER_LIMIT", 1 << 20)
    engine.answers[CONTAINER] = b'{"pad": "' + b"x" * (2 << 20) + b'"}'
    with pytest.raises(docker_client.DockerError, match="with more than 1048576 bytes"):
        docker_api.resolve_endpoint(docker_api.connect(engine.url, 5), "web")


def test_a_slow_engine_is_a_clear_error_within_the_timeout(engine):
    engine.delay = 3
    with pytest.raises(docker_client.DockerError, match="no answer from the Docker daemon.*timed out"):
        docker_api.resolve_endpoint(docker_api.connect(engine.url, 1), "web")
