"""Docker 29.7.2 with its nftables backend under firewalld (`nftables+firewalld`), in a DinD host
(issue 12): hotport's nftables publisher maps an unpublished container's port, it answers from
outside the host (this machine, through the DinD host's address) like Docker's own -p twin, a
re-run changes nothing, a firewalld reload leaves the mapping answering and hotport's tables as
they were, and absent closes it."""
import json
import time

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import reloaded_at

from .conftest import CURL_CLOSED, PAYLOAD, dind_host, docker, module, nft_list, sh, start_dind

HOST = "hp-e2e-nft-firewalld"
# No docker-proxy: it would answer for the -p twin even where the kernel path fails.
DAEMON = dict(dind_host.NFTABLES, **{"userland-proxy": False})


def in_host(*argv, check=True):
    return docker("exec", HOST, *argv, check=check)


@pytest.fixture(scope="module")
def address():
    start_dind(HOST, DAEMON, firewalld=True)
    in_host("docker", "run", "-d", "--name", "web", "hotport/target")
    in_host("docker", "run", "-d", "--name", "twin", "-p", "9090:80", "hotport/target")
    yield docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", HOST)
    dind_host.remove(HOST)


def page(address, port):
    """The page at address:port from this machine (outside the DinD host), or None when closed."""
    result = sh("curl", "-sS", "-m", "3", "http://%s:%d/" % (address, port), check=False)
    if result.returncode in CURL_CLOSED:
        return None
    assert result.returncode == 0, "the probe itself failed: %s" % result.stderr
    return result.stdout.strip()


def hotport_tables():
    return nft_list(HOST, "table", "ip", "hotport")


def docker_reloaded_at():
    """Docker's ReloadedAt, read as the reconciler reads it."""
    return reloaded_at(json.loads(in_host("docker", "info", "--format", "{{json .}}")))


def test_a_mapping_answers_survives_a_firewalld_reload_and_closes(address):
    def run(**args):
        return module(host=HOST, container="web", **args)

    assert page(address, 9090) == PAYLOAD, "Docker's own -p twin answers from outside"
    first = run(ports=["8080:80"])
    assert first["changed"] and first["engine"]["firewall_backend"] == "nftables+firewalld", first
    assert page(address, 8080) == PAYLOAD
    assert run(ports=["8080:80"])["changed"] is False
    tables = hotport_tables()

    before = docker_reloaded_at()
    in_host("firewall-cmd", "--reload")
    for dummy in range(30):  # Docker re-creates its rules after the reload, then says so
        if docker_reloaded_at() != before:
            break
        time.sleep(1)
    else:
        pytest.fail("dockerd never reported the firewalld reload (ReloadedAt stayed %r)" % before)
    assert page(address, 9090) == PAYLOAD
    assert page(address, 8080) == PAYLOAD, "the mapping answers after a firewalld reload, with no re-run"
    assert hotport_tables() == tables
    assert run(ports=["8080:80"])["changed"] is False

    assert run(state="absent")["changed"]
    assert page(address, 9090) == PAYLOAD
    assert page(address, 8080) is None
    assert "hotport:" not in in_host("nft", "list", "ruleset")
