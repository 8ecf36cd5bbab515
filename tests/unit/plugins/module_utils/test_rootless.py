"""The kernel method on a rootless engine, its pure parts: RootlessKit's API answers (a fake API on a
unix socket, playing RootlessKit straight and hostile), which of its ports are hotport's, what a
mapping reads back as, and the undo of RootlessKit's ports when a step fails. The Molecule rootless
scenario runs it against rootless Docker 29.7.2 itself."""
import http.server
import json
import os
import socketserver
import subprocess
import threading
import time
import types

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import Endpoint
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import (
    LayoutError, NetfilterError, Plan, PublisherError)
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_render import Docker28Layout
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import (
    IptablesSnapshot, parse_save)
from ansible_collections.hotport.docker.plugins.module_utils.publishers.rootless import (
    RootlessLayout, RootlessPublisher, RootlessSnapshot)
from ansible_collections.hotport.docker.plugins.module_utils.runners import NamespaceRunner
from ansible_collections.hotport.docker.plugins.module_utils.publishers.rootlesskit import (
    Port, RootlessKit, RootlessKitError, port_for, state_dir_of)

WEB = Endpoint("a" * 64, "web", "172.17.0.2", "hp-net", "br-5e1f0a7c9d2b")
CHILD_IP = "10.0.2.100"
INFO = {"apiVersion": "1.1.1", "version": "2.0.2", "stateDir": "/tmp/rl-run/dockerd-rootless", "childPID": 42,
        "networkDriver": {"driver": "slirp4netns", "childIP": CHILD_IP}, "portDriver": {"driver": "builtin"}}
DOCKERS = {"id": 1, "spec": {"proto": "tcp", "parentIP": "0.0.0.0", "parentPort": 9090, "childPort": 9090}}


class FakeAPI(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """RootlessKit's API on a unix socket, answering from ``answers`` {(method, path): (status, body
    text)}; POST /v1/ports answers the next ID. Records the requests."""

    daemon_threads = True

    def __init__(self, path, answers):
        self.answers, self.requests = answers, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def address_string(self):
                return "rootlesskit"

            def _answer(request):  # pylint: disable=no-self-argument
                length = int(request.headers.get("Content-Length") or 0)
                body = request.rfile.read(length).decode() if length else ""
                self.requests.append((request.command, request.path, body and json.loads(body)))
                status, text = self.answers.get((request.command, request.path), (404, "not found"))
                data = text.encode()
                request.send_response(status)
                request.send_header("Content-Length", str(len(data)))
                request.end_headers()
                request.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

        super().__init__(path, Handler)
        threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True).start()


def in_own_user_namespace(uid=None):
    """A process in a user namespace of its own, as RootlessKit's child is (of ``uid`` when given)."""
    argv = ["sleep", "60"] if uid is not None else ["unshare", "-U", "sleep", "60"]
    process = subprocess.Popen(argv, preexec_fn=(lambda: os.setuid(uid)) if uid is not None else None)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.readlink("/proc/%d/exe" % process.pid).endswith("unshare"):
        time.sleep(0.01)
    return process


@pytest.fixture
def child():
    process = in_own_user_namespace()
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def kit(tmp_path, child):
    """(RootlessKit of a state dir in tmp_path, its FakeAPI)."""
    state = tmp_path / "dockerd-rootless"
    state.mkdir()
    (state / "child_pid").write_text(str(child))
    answers = {("GET", "/v1/info"): (200, json.dumps(INFO)), ("GET", "/v1/ports"): (200, json.dumps([DOCKERS])),
               ("POST", "/v1/ports"): (201, '{"id": 7, "spec": {}}'), ("DELETE", "/v1/ports/7"): (200, "null")}
    server = FakeAPI(str(state / "api.sock"), answers)
    yield RootlessKit(str(state), timeout=5), server
    server.shutdown()
    server.server_close()


def test_the_state_dir_is_beside_the_engines_socket():
    assert state_dir_of("unix:///tmp/rl-run/docker.sock") == "/tmp/rl-run/dockerd-rootless"
    for far in ("tcp://10.0.0.1:2376", "ssh://hp@host", None):
        with pytest.raises(LayoutError, match="through its unix socket"):
            state_dir_of(far)


def test_a_missing_state_dir_or_one_of_another_user_is_refused_by_name(tmp_path):
    with pytest.raises(LayoutError, match="dockerd-rootless was not found"):
        RootlessKit(str(tmp_path / "dockerd-rootless"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "api.sock").write_text("")
    os.chown(str(other), 1000, 1000)
    with pytest.raises(LayoutError, match="belongs to uid 1000"):
        RootlessKit(str(other))


def test_rootlesskits_answers_are_read_and_its_calls_made(kit, child):
    rootlesskit, api = kit
    assert rootlesskit.info() == ("builtin", CHILD_IP)
    assert rootlesskit.ports() == [Port("tcp", "0.0.0.0", 9090, "", 9090, 1)]
    port = port_for(parse_ports(["8080:80"])[0], WEB.container_id, CHILD_IP)
    assert rootlesskit.add(port).port_id == 7
    rootlesskit.remove(Port("tcp", "0.0.0.0", 8080, CHILD_IP, 8080, 7))
    assert api.requests[-2:] == [
        ("POST", "/v1/ports", {"proto": "tcp", "parentIP": "0.0.0.0", "parentPort": 8080, "childIP": CHILD_IP,
                               "childPort": 8080}),
        ("DELETE", "/v1/ports/7", "")]
    assert rootlesskit.child_pid() == child


@pytest.mark.parametrize("path, answer, error", [
    ("/v1/ports", (200, "not json"), "not JSON"),
    ("/v1/ports", (200, json.dumps([{"id": 2, "spec": {"proto": "icmp", "parentPort": 1}}])), "cannot read"),
    ("/v1/ports", (200, json.dumps([{"id": 2, "spec": {"proto": "tcp", "parentPort": 0}}])), "cannot read"),
    ("/v1/ports", (200, json.dumps([{"spec": {"proto": "tcp", "parentPort": 80}}])), "cannot read"),
    ("/v1/ports", (200, json.dumps(["x"])), "cannot read"),
    ("/v1/ports", (200, "[" * 100000 + "]" * 100000), "not JSON"),
    ("/v1/ports", (200, " " * (4 * 1024 * 1024 + 1)), "more than"),
    ("/v1/ports", (500, "broken"), "HTTP 500"),
    ("/v1/info", (200, json.dumps(dict(INFO, networkDriver={"driver": "host"}))), "no IPv4 address"),
    ("/v1/info", (200, json.dumps(dict(INFO, networkDriver={"childIP": "127.0.0.1"}))), "no IPv4 address"),
    ("/v1/info", (200, json.dumps(dict(INFO, networkDriver={"childIP": "10.0.2.100; rm -rf /"}))), "no IPv4 address"),
    ("/v1/info", (200, "[]"), "no IPv4 address"),
])
def test_hostile_answers_are_refused_with_what_was_wrong(kit, path, answer, error):
    rootlesskit, api = kit
    api.answers[("GET", path)] = answer
    with pytest.raises((RootlessKitError, LayoutError), match=error):
        rootlesskit.info() if path == "/v1/info" else rootlesskit.ports()


@pytest.mark.parametrize("content", ["", "x", "1", "-5", "99999999999"])
def test_a_child_pid_that_is_no_running_process_is_refused(kit, content):
    rootlesskit, api = kit
    with open(os.path.join(rootlesskit.state_dir, "child_pid"), "w") as handle:
        handle.write(content)
    with pytest.raises(LayoutError, match="not a running process|cannot read"):
        rootlesskit.child_pid()


def test_a_state_dir_that_is_a_symlink_is_refused(kit, tmp_path):
    """The reported escalation: the state dir a symlink to a folder with a fake api.sock and child_pid."""
    rootlesskit, api = kit
    link = tmp_path / "linked"
    link.symlink_to(rootlesskit.state_dir)
    with pytest.raises(LayoutError, match="is a symlink"):
        RootlessKit(str(link)).child_pid()


def test_a_child_pid_file_that_is_a_symlink_is_refused(kit, tmp_path, child):
    rootlesskit, api = kit
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(str(child))
    os.unlink(os.path.join(rootlesskit.state_dir, "child_pid"))
    os.symlink(str(elsewhere), os.path.join(rootlesskit.state_dir, "child_pid"))
    with pytest.raises(LayoutError, match="cannot read"):
        rootlesskit.child_pid()


def test_a_child_pid_of_a_process_in_our_own_user_namespace_is_refused(kit):
    rootlesskit, api = kit
    with open(os.path.join(rootlesskit.state_dir, "child_pid"), "w") as handle:
        handle.write(str(os.getpid()))
    with pytest.raises(LayoutError, match="own user namespace"):
        rootlesskit.child_pid()


def test_a_child_pid_of_another_users_process_is_refused(kit):
    rootlesskit, api = kit
    stranger = in_own_user_namespace(uid=65534)
    try:
        with open(os.path.join(rootlesskit.state_dir, "child_pid"), "w") as handle:
            handle.write(str(stranger.pid))
        with pytest.raises(LayoutError, match="uid 65534"):
            rootlesskit.child_pid()
    finally:
        stranger.kill()
        stranger.wait()


def namespace(rules=()):
    """The engine's namespace as iptables-save would say, holding ``rules``."""
    tables = parse_save("*nat\n:DOCKER - [0:0]\nCOMMIT\n*filter\n:DOCKER - [0:0]\n:DOCKER-FORWARD - [0:0]\nCOMMIT\n")
    for rule in rules:
        tables[rule.table].chains.setdefault(rule.chain, []).append(rule)
    return IptablesSnapshot({4: (None, tables)}, Docker28Layout())


LAYOUT = RootlessLayout(Docker28Layout(), CHILD_IP, "builtin")


def test_a_mapping_is_the_engines_rules_in_its_namespace_and_a_rootlesskit_port():
    rendered = LAYOUT.render(parse_ports(["127.0.0.1:8080:80"])[0], WEB)
    assert rendered[-1] == Port("tcp", "127.0.0.1", 8080, CHILD_IP, 8080, owner_tag="hotport:aaaaaaaaaaaa:tcp/8080")
    # Inside, the connection arrives at the namespace's address, whatever address the client used.
    assert [rule.args for rule in rendered[:-1]] == [rule.args for rule in Docker28Layout().render(
        parse_ports(["8080:80"])[0], WEB)]
    with pytest.raises(PublisherError, match="builtin port driver hands each connection"):
        LAYOUT.render(parse_ports(["8080:80"], allowed_sources=["10.0.0.0/8"])[0], WEB)


def test_ports_are_hotports_only_when_its_dnat_publishes_them_as_it_renders():
    mapping = parse_ports(["127.0.0.1:8080:80"])[0]
    rules = LAYOUT.render(mapping, WEB)
    ours = Port("tcp", "127.0.0.1", 8080, CHILD_IP, 8080, 3)
    elsewhere = Port("tcp", "0.0.0.0", 8080, "127.0.0.1", 8080, 4)  # same port, forwarded elsewhere
    untagged = Port("udp", "0.0.0.0", 5353, CHILD_IP, 5353, 5)  # no DNAT of hotport's for it
    snapshot = RootlessSnapshot(namespace(rules[:-1]), [ours, elsewhere, untagged], LAYOUT)
    assert snapshot.ports == [Port("tcp", "127.0.0.1", 8080, CHILD_IP, 8080, 3, "hotport:aaaaaaaaaaaa:tcp/8080")]
    assert snapshot.foreign == [elsewhere, untagged]
    assert [(claim.owner_tag, claim.protocol, claim.first) for claim in snapshot.claims(4)] == [
        ("hotport:aaaaaaaaaaaa:tcp/8080", "tcp", 8080), (None, "tcp", 8080), (None, "udp", 5353)]
    assert snapshot.copies(4, rules[-1]) == snapshot.ports
    assert [found.as_dict() for found in snapshot.mappings_of(snapshot.owned(4)).values()] == [
        dict(host_ip="127.0.0.1", host_port=8080, container_port=80, protocol="tcp", allowed_sources=[],
             local_access=True)]


class Kit:
    """RootlessKit's port calls, failing the ``fail_adding``-th add."""

    def __init__(self, state_dir, fail_adding=0):
        self.state_dir, self.api_socket, self.fail_adding = state_dir, "api.sock", fail_adding
        self.calls = []

    def child_pid(self):
        return os.getpid()

    def network_namespace(self, pid):
        return None

    def add(self, port):
        self.calls.append(("add", port.parent_port))
        if len([call for call in self.calls if call[0] == "add"]) == self.fail_adding:
            raise RootlessKitError("RootlessKit refused POST /ports (HTTP 500): listen tcp 0.0.0.0:%d: in use"
                                   % port.parent_port)
        return Port(port.protocol, port.parent_ip, port.parent_port, port.child_ip, port.child_port, 90)

    def remove(self, port):
        self.calls.append(("remove", port.parent_port))


class Inner:
    """The engine's own publisher in the namespace, failing its transaction when asked to."""

    name = "iptables"

    def __init__(self, runner, engine, fails=False):
        self.fails, self.applied = fails, []

    def apply(self, snapshot, plans):
        if self.fails == "bug":
            raise KeyError(6)
        if self.fails:
            raise NetfilterError("iptables-restore --noflush failed (rc=1): line 2; nothing was changed.")
        self.applied.append(plans)


def publisher(tmp_path, fail_adding=0, inner_fails=False):
    made = RootlessPublisher(None, None, Kit(str(tmp_path), fail_adding), Inner)
    made.inner.fails = inner_fails
    return made


LIVE = types.SimpleNamespace(inner=types.SimpleNamespace(families=lambda: {4, 6}))  # the namespace has both families
OLD = Port("tcp", "0.0.0.0", 8081, CHILD_IP, 8081, 2, "hotport:aaaaaaaaaaaa:tcp/8081")


def plans():
    new = port_for(parse_ports(["8080:80"])[0], WEB.container_id, CHILD_IP)
    return {4: Plan(delete=[OLD], add=[new])}


def test_ports_go_first_then_the_rules_in_one_transaction(tmp_path):
    made = publisher(tmp_path)
    made.apply(LIVE, plans())
    assert made.rootlesskit.calls == [("remove", 8081), ("add", 8080)]
    assert made.inner.applied == [{4: Plan(), 6: Plan()}]
    assert made.lock_path == os.path.join(str(tmp_path), "hotport.lock")


def test_a_refused_port_undoes_the_ports_and_says_nothing_changed(tmp_path):
    made = publisher(tmp_path, fail_adding=1)
    with pytest.raises(RootlessKitError, match="in use. Everything was undone; nothing was changed"):
        made.apply(LIVE, plans())
    assert made.rootlesskit.calls == [("remove", 8081), ("add", 8080), ("add", 8081)]
    assert made.inner.applied == []


def test_a_failed_rule_transaction_undoes_the_ports(tmp_path):
    made = publisher(tmp_path, inner_fails=True)
    with pytest.raises(NetfilterError, match="nothing was changed"):
        made.apply(LIVE, plans())
    assert made.rootlesskit.calls == [("remove", 8081), ("add", 8080), ("remove", 8080), ("add", 8081)]


def test_any_failure_of_the_rules_step_undoes_the_ports(tmp_path):
    made = publisher(tmp_path, inner_fails="bug")
    with pytest.raises(KeyError):
        made.apply(LIVE, plans())
    assert made.rootlesskit.calls == [("remove", 8081), ("add", 8080), ("remove", 8080), ("add", 8081)]


def test_the_namespace_is_entered_where_rootlesskit_bound_it(kit, tmp_path):
    """With --detach-netns the engine's network namespace is a file in the state dir (as the child's
    mounts see it), and the child itself stays in the host's."""
    rootlesskit, api = kit
    assert rootlesskit.network_namespace(os.getpid()) is None
    (tmp_path / "dockerd-rootless" / "netns").write_text("")
    bound = rootlesskit.network_namespace(os.getpid())
    assert bound == "/proc/%d/root%s/netns" % (os.getpid(), rootlesskit.state_dir)
    runner = NamespaceRunner(types.SimpleNamespace(which=lambda name: "/usr/sbin/" + name), 42, bound)
    assert runner.prefix == ["nsenter", "-U", "--preserve-credentials", "-m", "-t", "42", "--net=" + bound, "--"]


class Recorder:
    """A runner that records every command and runs none."""

    def __init__(self):
        self.calls = []

    def which(self, name):
        return "/usr/sbin/" + name

    def run(self, argv, data=None):
        self.calls.append(list(argv))
        return 1, "", "not run"


def test_root_never_enters_a_rootless_engines_namespace(kit, tmp_path):
    """The HIGH finding: root running hotport against a rootless engine's socket entered the user's
    namespaces and ran what that user's mounts hold. As root every path refuses before any command."""
    from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo
    from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import (
        ForeignEngineError, kernel_publisher, publisher_for)
    assert os.geteuid() == 0, "the unit suite runs as root"
    engine = EngineInfo("29.7.2", "1.55", "iptables", rootless=True)
    client = types.SimpleNamespace(base_url="unix://%s/docker.sock" % tmp_path)
    runner = Recorder()
    with pytest.raises(ForeignEngineError, match="runs rootless, as an ordinary user, and this run is root"):
        kernel_publisher(runner, engine, client)
    sidecar = publisher_for(runner, engine, client, "sidecar")
    assert sidecar.kernel_publisher is None
    assert [warning for warning in sidecar.warnings if "were not read" in warning]
    assert runner.calls == []
