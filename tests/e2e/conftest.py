"""End to end on the Docker engine of this host (make e2e starts one if none answers):
the real module through `ansible`, real containers, packets from a client namespace."""
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections import namedtuple
from functools import partial

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import strip_save_comments

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(ROOT, "scripts", "client-netns.sh")
IMAGE = "hotport/target"
PAYLOAD = open(os.path.join(ROOT, "images", "target", "index.html")).read().strip()
HOST_ADDRESS = "198.18.0.1"
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import dind_host  # noqa: E402

RECONCILER_LIB = os.path.join(ROOT, ".build", "e2e-reconciler")
RECONCILER = os.path.join(RECONCILER_LIB, "hotport-reconcile")
ANSIBLE_ENV = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"),
                   ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1")


def sh(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def docker(*args, check=True):
    return sh("docker", *args, check=check).stdout.strip()


def ruleset():
    """The host's whole ruleset of both families (nft and legacy), without timestamps and
    packet counters."""
    text = "".join(sh(command).stdout for command in
                   ("iptables-nft-save", "iptables-legacy-save", "ip6tables-nft-save", "ip6tables-legacy-save"))
    return re.sub(r"\[\d+:\d+\]", "", strip_save_comments(text))


def module(check=False, diff=False, module_name="hotport.docker.container_port_map", host="localhost", **args):
    """Run a hotport module on localhost, or on a Docker-in-Docker ``host`` over Ansible's docker
    connection -> its result dict."""
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible"), host, "-m", module_name, "-a", json.dumps(args)]
    if host == "localhost":
        argv += ["-e", "ansible_python_interpreter=" + sys.executable]
    else:
        argv += ["-i", host + ",", "-c", "community.docker.docker", "-e", "ansible_python_interpreter=/usr/bin/python3"]
    argv += ["--check"] * check + ["--diff"] * diff
    out = subprocess.run(argv, capture_output=True, text=True, env=ANSIBLE_ENV, check=False).stdout
    head, sep, body = out.partition(" => {")
    result = json.loads("{" + body)
    # ansible-core 2.19 prints the failure only in the header: "localhost | FAILED! => {"
    result["failed"] = "FAILED!" in head.splitlines()[-1]
    if diff:  # the callback prints the diff above the result, and leaves it out of the JSON
        result["diff_lines"] = head.rpartition(host + " | ")[0].splitlines()
    return result


# Where the module runs and what it may change: this host, or a Docker-in-Docker host.
Engine = namedtuple("Engine", "docker module ruleset")
HOST_ENGINE = Engine(docker, module, ruleset)


def nft_list(host, *what):
    """``nft list WHAT`` on a DinD host, without counters (they move with any traffic)."""
    return re.sub(r"counter packets \d+ bytes \d+", "counter", docker("exec", host, "nft", "list", *what))


def start_dind(name, daemon, **options):
    """A Docker 29.7.2 DinD host (scripts/dind_host.py) for a test; its image is built by make e2e."""
    if sh("docker", "image", "inspect", dind_host.IMAGE, check=False).returncode != 0:
        pytest.fail("image %s missing; run `make e2e`, which builds it" % dind_host.IMAGE)
    dind_host.start(name, daemon, **options)


@pytest.fixture(scope="session")
def nftables_engine():
    """Docker 29.7.2 with its nftables firewall backend and bridge-accept-fwmark (a DinD host)."""
    name = "hp-e2e-nftables"
    start_dind(name, dind_host.NFTABLES)
    # The whole netfilter state: Docker's tables, hotport's and iptables-nft's.
    yield Engine(partial(docker, "exec", name, "docker"), partial(module, host=name), partial(nft_list, name, "ruleset"))
    dind_host.remove(name)


# curl's exit codes for a closed port: 7 refused, 28 no answer in time (a DROP), 52 and 56 an
# empty reply or a reset. Any other failure is the probe's own and raises, so that a broken
# probe cannot pass for a closed port.
CURL_CLOSED = (7, 28, 52, 56)


def fetch(port):
    """Page at HOST_ADDRESS:port from the client namespace, or None when the port is closed."""
    result = sh(CLIENT, "exec", "curl", "-sS", "-m", "3", "http://%s:%d/" % (HOST_ADDRESS, port), check=False)
    if result.returncode in CURL_CLOSED:
        return None
    assert result.returncode == 0, "the probe itself failed: %s" % result.stderr
    return result.stdout.strip()


def fetch_udp(port, source_port=None):
    """Answer to one datagram sent to HOST_ADDRESS:port from the client namespace (from
    ``source_port`` if given), or None when none came back."""
    target = "UDP:%s:%d" % (HOST_ADDRESS, port) + (",sourceport=%d,reuseaddr" % source_port if source_port else "")
    result = subprocess.run([CLIENT, "exec", "socat", "-T2", "-", target],
                            input="probe\n", capture_output=True, text=True, check=False)
    # socat ends 0 on its timeout (silence) and 1 when a port unreachable came back: both mean
    # closed; anything else is the probe's own failure.
    refused = result.returncode == 1 and "Connection refused" in result.stderr
    assert result.returncode == 0 or refused, "the probe itself failed: %s" % result.stderr
    return result.stdout.strip() or None


@pytest.fixture(scope="session", autouse=True)
def engine():
    if sh("docker", "version", check=False).returncode != 0:
        pytest.fail("no Docker engine answers; run `make e2e`, which starts one")
    if sh("docker", "image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.fail("image %s missing; run `make e2e`, which builds it" % IMAGE)
    sh(CLIENT, "up")
    yield
    sh(CLIENT, "down")


@pytest.fixture
def containers():
    """Start containers (never with -p unless asked); remove them afterwards."""
    made = []

    def run(*args, name=None, command=()):
        name = name or "hp-e2e-" + uuid.uuid4().hex[:8]
        docker("run", "-d", "--name", name, *args, IMAGE, *command)
        made.append(name)
        return name

    yield run
    for name in made:
        module(container=docker("inspect", "-f", "{{.Id}}", name, check=False) or name, state="absent")
        docker("rm", "-f", name, check=False)


@pytest.fixture
def network():
    made = []

    def create(*args):
        name = "hp-e2e-net-" + uuid.uuid4().hex[:6]
        made.append(docker("network", "create", *args, name))
        return name

    yield create
    # Torn down before the containers fixture (reverse set-up order): detach them first, or the
    # removal fails and every run leaks a network and its address pool.
    for network_id in made:
        for container in docker("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", network_id).split():
            docker("network", "disconnect", "-f", network_id, container)
        docker("network", "rm", network_id)


def address(container, network="bridge"):
    return docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % network, container)


@pytest.fixture
def reconciler():
    """The reconciler as the role lays it out (the playbooks install it there too), this tree's code."""
    code = os.path.join(RECONCILER_LIB, "ansible_collections", "hotport", "docker", "plugins", "module_utils")
    shutil.copytree(os.path.join(ROOT, "plugins", "module_utils"), code, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "roles", "port_map", "files", "hotport-reconcile"), RECONCILER)
    return RECONCILER
