"""Which ports the reconciler holds, and what it says when it cannot (issue 34). The namespace
suite (tests/netns/test_trust_netns.py) shows the sockets keeping other users out."""
import errno
import types

from ansible_collections.hotport.docker.plugins.module_utils import reconciler
from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo
from ansible_collections.hotport.docker.plugins.module_utils.docker_connection import from_params
from ansible_collections.hotport.docker.plugins.module_utils.port_holder import PortHolder, held_ports
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.state_file import update_state

ROOTFUL = EngineInfo("29.7.2", "1.55", "iptables")
ENTRIES = [{"container": "web", "ports": ["8080:80", "[::]:8080:80", "127.0.0.1:5353:53/udp"]},
           {"container": "db", "ports": ["15432:5432"], "method": "sidecar"},
           {"container": "broken", "ports": ["nonsense"]}, {"container": "odd", "ports": 5}, "not an entry"]


class Held:
    def __init__(self, key):
        self.key, self.closed = key, False

    def close(self):
        self.closed = True


def test_the_recorded_kernel_mappings_ports_are_held():
    assert held_ports(ENTRIES, parse_ports) == {(4, "tcp", "", 8080), (6, "tcp", "", 8080), (4, "udp", "127.0.0.1", 5353)}


def test_keep_holds_what_is_wanted_closes_the_rest_and_names_a_taken_port():
    made = []

    def bind(*key):
        if key[3] == 9090:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        made.append(Held(key))
        return made[-1]

    holder = PortHolder(bind)
    assert holder.keep({(4, "tcp", "", 8080), (4, "tcp", "", 8081)}) == []
    said = holder.keep({(4, "tcp", "", 8080), (4, "tcp", "", 9090)})
    assert said and "*:9090/tcp" in said[0] and "ss -lnp sport = :9090" in said[0]
    assert [(held.key[3], held.closed) for held in made] == [(8080, False), (8081, True)]
    assert set(holder.held) == {(4, "tcp", "", 8080)}


def held_through_a_session(tmp_path, docker_host, engine):
    """What the reconciler's session asks its holder to keep, for the first two ENTRIES."""
    state = str(tmp_path / "mappings.json")
    update_state(state, lambda entries: ENTRIES[:2])
    kept = []
    holder = types.SimpleNamespace(keep=lambda wanted: kept.append(wanted) or [])
    client = types.SimpleNamespace(connection=from_params({"docker_host": docker_host}, {}))
    reconciler.EngineSession(None, client, engine, state, holder).hold_ports()
    return kept


def test_the_reconciler_holds_the_recorded_ports_of_its_own_engine_only(tmp_path):
    assert held_through_a_session(tmp_path, "unix:///var/run/docker.sock", ROOTFUL) == [
        {(4, "tcp", "", 8080), (6, "tcp", "", 8080), (4, "udp", "127.0.0.1", 5353)}]
    assert held_through_a_session(tmp_path, "tcp://127.0.0.1:2375", ROOTFUL) == []


def test_on_a_rootless_engine_rootlesskit_holds_the_ports_itself(tmp_path):
    """Its port driver listens on each mapped port: a port held first would keep RootlessKit out."""
    rootless = EngineInfo("29.7.2", "1.55", "iptables", rootless=True)
    assert held_through_a_session(tmp_path, "unix:///tmp/rl-run/docker.sock", rootless) == []
