"""The catalogue of bad inputs (issue 6): each one through the real module gives an error that
names the problem, and leaves the ruleset exactly as it was: on this host's engine (iptables-save
of both variants and families), and on Docker 29.7.2 with its nftables backend in a DinD host
(`nft list ruleset`, Docker's tables and hotport's own; issue 12)."""
import uuid

import pytest

from .conftest import HOST_ENGINE, IMAGE

BUSY_PORT = 18099  # a host-networked container listens here


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def scene(request):
    """Containers in every state the catalogue needs, made once per engine -> (engine, names)."""
    engine = HOST_ENGINE if request.param == "iptables" else request.getfixturevalue("nftables_engine")
    docker, module = engine.docker, engine.module
    suffix = uuid.uuid4().hex[:6]
    names = dict((role, "hp-bad-%s-%s" % (role, suffix))
                 for role in ("web", "stopped", "hostnet", "twonet", "published", "other"))
    network = "hp-bad-net-" + suffix
    docker("network", "create", network)
    docker("run", "-d", "--name", names["web"], IMAGE)
    docker("run", "-d", "--name", names["stopped"], IMAGE)
    docker("stop", "-t", "1", names["stopped"])
    docker("run", "-d", "--name", names["hostnet"], "--network", "host", IMAGE,
           "/bin/busybox", "httpd", "-f", "-p", str(BUSY_PORT), "-h", "/www")
    docker("run", "-d", "--name", names["twonet"], IMAGE)
    docker("network", "connect", network, names["twonet"])
    docker("run", "-d", "--name", names["published"], "-p", "18443:80", IMAGE)
    docker("run", "-d", "--name", names["other"], IMAGE)
    assert not module(container=names["other"], ports=["18092:80"]).get("failed")
    yield engine, names
    module(container=names["other"], state="absent")
    docker("rm", "-f", *names.values(), check=False)
    docker("network", "rm", network, check=False)


WEB = "web"
CASES = [
    # malformed port specifications
    ("no host port", dict(ports=["80"]), "no host port given"),
    ("empty host port", dict(ports=["127.0.0.1::80"]), "host port is missing"),
    ("port 0", dict(ports=["0:80"]), "out of range"),
    ("container port above 65535", dict(ports=["18090:65536"]), "out of range"),
    ("host port above 65535", dict(ports=["70000:80"]), "out of range"),
    ("reversed range", dict(ports=["18010-18000:80-90"]), "reversed"),
    ("ranges of different lengths", dict(ports=["18000-18002:80"]), "must be the same length"),
    ("unknown protocol", dict(ports=["18090:80/icmp"]), "unknown protocol"),
    ("host IP is a name", dict(ports=["web:18090:80"]), "not an IP address"),
    ("IPv6 loopback host IP", dict(ports=["[::1]:18090:80"]), "::1 cannot be forwarded"),
    ("IPv6 address without brackets", dict(ports=["::18090:80"]), "too many ':'"),
    ("too many separators", dict(ports=["1:2:3:4"]), "too many ':'"),
    ("service name for a port", dict(ports=["18090:http"]), "not a port number"),
    ("shell metacharacters: ;", dict(ports=["18090;rm -rf /:80"]), "cannot appear in a port"),
    ("shell metacharacters: $()", dict(ports=["18090:80/tcp$(id)"]), "cannot appear in a port"),
    ("shell metacharacters: backticks", dict(ports=["18090:80`reboot`"]), "cannot appear in a port"),
    ("dict without container_port", dict(ports=[{"host_port": 18090}]), "container_port is required"),
    ("dict with an unknown key", dict(ports=[{"host_port": 18090, "container_port": 80, "proto": "tcp"}]),
     "unknown key"),
    ("two targets for one host port", dict(ports=["18090:80", "18090:81"]), "both claim host port tcp/18090"),
    ("no ports at all", dict(ports=[]), "ports is empty"),
    # source allow-lists and options
    ("source with host bits", dict(ports=["18090:80"], allowed_sources=["10.0.0.1/8"]), "host bits set"),
    ("source that is a name", dict(ports=["18090:80"], allowed_sources=["office"]), "not an IP address or network"),
    ("only IPv6 sources for an IPv4 mapping", dict(ports=["18090:80"], allowed_sources=["2001:db8::/32"]),
     "lists no IPv4 network"),
    ("link-local IPv6 source", dict(ports=["[::]:18090:80"], allowed_sources=["fe80::/64"]), "link-local"),
    ("local_access not a boolean", dict(ports=["18090:80"], local_access="maybe"), "local_access"),
    ("unknown state", dict(ports=["18090:80"], state="on"), "state must be one of"),
    # the host's side of the port
    ("host IP not on this host", dict(ports=["10.9.9.9:18090:80"]), "is not an address of this host"),
    ("port a host socket listens on", dict(ports=["%d:80" % BUSY_PORT]), "is in use on the host"),
    ("port published by Docker", dict(ports=["18443:80"]), "already published by Docker"),
    ("port mapped to another container", dict(ports=["18092:80"]), "already mapped by hotport"),
    # the container
    ("container missing", dict(container="hp-bad-does-not-exist", ports=["18090:80"]), "not found"),
    ("shell metacharacters in the name", dict(container="web; reboot", ports=["18090:80"]), "not found"),
    ("container stopped", dict(container="stopped", ports=["18090:80"]), "is not running"),
    ("container host-networked", dict(container="hostnet", ports=["18090:80"]), "network mode 'host'"),
    ("ambiguous network", dict(container="twonet", ports=["18090:80"]), "set network to the one"),
    ("IPv6 spec for a v4-only container", dict(ports=["[::]:18090:80"]), "has no IPv6 address on network"),
    ("unknown network", dict(ports=["18090:80"], network="nope"), "is not on network"),
    ("daemon not reachable", dict(ports=["18090:80"], docker_host="unix:///run/hp-no-such.sock"),
     "cannot reach the Docker daemon"),
]


@pytest.mark.parametrize("args, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_a_clear_error_with_nothing_changed(scene, args, message):
    engine, names = scene
    args = dict(args)
    args["container"] = names.get(args.get("container", WEB), args.get("container"))
    before = engine.ruleset()
    result = engine.module(**args)
    assert result.get("failed") and message in result["msg"], result
    assert engine.ruleset() == before
