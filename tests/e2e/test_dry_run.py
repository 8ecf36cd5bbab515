"""The dry run an operator does first (issue 37): `--check` and `--check --diff` of add_mapping.yml
(the role, its package check and its reconciler) on a fresh Docker 29.7.2 DinD host that lacks a
package the role installs, then on the same host once configured. A dry run ends well, says what it
would change (the missing package included), stays short, and changes nothing."""
import os
import re
import subprocess
import sys

import pytest

from .conftest import ANSIBLE_ENV, PAYLOAD, ROOT, dind_host, docker, sh, start_dind

HOST = "hp-e2e-dry-run"
# conntrack, a package the role installs, made missing as on a fresh host, and served by a local
# apt repository in place of Debian's mirror (no network): the package repacked from its files.
UNINSTALL_CONNTRACK = """set -e
mkdir -p /tmp/pkg/DEBIAN /srv/repo
dpkg-query -L conntrack | while read -r path; do [ ! -f "$path" ] || cp -a --parents "$path" /tmp/pkg; done
dpkg-query -s conntrack | grep -v '^Status:' > /tmp/pkg/DEBIAN/control
dpkg-deb -b /tmp/pkg /srv/repo/conntrack.deb >/dev/null
{ dpkg-deb -f /srv/repo/conntrack.deb; echo 'Filename: ./conntrack.deb'; echo "Size: $(stat -c %s /srv/repo/conntrack.deb)"
  echo "SHA256: $(sha256sum /srv/repo/conntrack.deb | cut -d' ' -f1)"; } > /srv/repo/Packages
echo 'deb [trusted=yes] file:/srv/repo ./' > /etc/apt/sources.list
apt-get update -qq
dpkg --remove conntrack >/dev/null
"""


def in_host(*argv, check=True):
    return docker("exec", HOST, *argv, check=check)


def host_state():
    """What a run may change on the host: its ruleset (packet counters aside), the role's files and
    the packages."""
    return (re.sub(r"\[\d+:\d+\]", "", in_host("sh", "-c", "iptables-save | grep -v '^#'; ip6tables-save | grep -v '^#'")),
            in_host("sh", "-c", "ls -R /etc/hotport /usr/local/lib/hotport /usr/local/sbin 2>&1; true"),
            in_host("dpkg-query", "-W", "-f", "${Package} ${Status}\\n"))


def add_mapping(*flags):
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", HOST + ",",
            "-c", "community.docker.docker", os.path.join(ROOT, "playbooks", "add_mapping.yml"),
            "-e", "target=" + HOST, "-e", "ansible_python_interpreter=/usr/bin/python3", "-e", "ansible_become=false",
            "-e", "container=web", "-e", "ports=8080:80,8053:53/udp"] + list(flags)
    return subprocess.run(argv, capture_output=True, text=True, env=ANSIBLE_ENV, check=False)


def recap(result):
    assert result.returncode == 0, result.stdout[-4000:]
    return int(result.stdout.rpartition("changed=")[2].split()[0])


@pytest.fixture(scope="module")
def fresh_host():
    start_dind(HOST, {})
    in_host("docker", "run", "-d", "--name", "web", "hotport/target")
    in_host("sh", "-c", UNINSTALL_CONNTRACK)
    # PID 1 is a shell, yet Ansible takes a host whose /sbin/init is systemd's for a systemd one.
    in_host("rm", "/sbin/init")
    yield
    dind_host.remove(HOST)


def test_dry_runs_on_a_fresh_host_then_on_a_configured_one(fresh_host):
    before = host_state()
    dry = add_mapping("--check", "--diff")
    assert recap(dry) > 0
    install = dry.stdout[dry.stdout.index("TASK [hotport.docker.port_map : Install the packages that are missing]"):]
    install = install.split("TASK [")[1]
    assert "changed: [%s]" % HOST in install and "conntrack" in install, install[:600]
    apply = dry.stdout[dry.stdout.index("TASK [hotport.docker.port_map : Apply the mappings]"):]
    assert "changed: [%s]" % HOST in apply.split("TASK [")[1], apply[:600]
    assert "+++ after" in dry.stdout, "the diff shows what would change"
    lines = dry.stdout.splitlines()
    assert len(lines) < 400, "the dry run's diff is %d lines long" % len(lines)
    assert "def " not in dry.stdout, "the reconciler's code is printed file by file"
    assert host_state() == before, "a dry run changed the host"

    assert recap(add_mapping()) > 0
    assert in_host("dpkg-query", "-W", "-f", "${Status}", "conntrack") == "install ok installed"
    configured = host_state()
    assert sh("curl", "-sS", "-m", "3", "http://%s:8080/" % dind_host.address(HOST)).stdout.strip() == PAYLOAD
    assert recap(add_mapping("--check", "--diff")) == 0
    assert host_state() == configured
