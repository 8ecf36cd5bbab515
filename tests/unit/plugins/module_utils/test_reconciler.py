"""The reconciler service when dockerd does not answer: a clear failure, or retrying."""
import types
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.hotport.docker.plugins.module_utils import reconciler
from ansible_collections.hotport.docker.plugins.module_utils.apply import Outcome
from ansible_collections.hotport.docker.plugins.module_utils.docker_connection import from_params
from ansible_collections.hotport.docker.plugins.module_utils.state_file import load_state, update_state

NO_DAEMON = "unix:///nonexistent/hotport-test.sock"


def test_apply_without_a_daemon_fails_with_the_reason(capsys, tmp_path):
    assert reconciler.main(["apply", "--docker-host", NO_DAEMON, "--state-file", str(tmp_path / "m.json")]) == 1
    assert "FAILED: cannot reach the Docker daemon at " + NO_DAEMON in capsys.readouterr().out


class Stop(Exception):
    pass


def stop_after_sleeps(monkeypatch, count):
    """Let watch() sleep ``count`` times, then stop it -> the list of its sleeps."""
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        if len(slept) == count:
            raise Stop()

    monkeypatch.setattr(reconciler.time, "sleep", sleep)
    return slept


def test_watch_keeps_retrying_with_back_off(monkeypatch, capsys, tmp_path):
    slept = stop_after_sleeps(monkeypatch, 5)

    def connect():
        return reconciler.docker_api.connect(NO_DAEMON, 5)

    with pytest.raises(Stop):
        reconciler.watch(None, connect, str(tmp_path / "m.json"), 60)
    assert slept == [1, 2, 4, 8, 10]
    assert capsys.readouterr().out.count("Docker not reachable") == 5


def test_watch_outlives_an_unexpected_error(monkeypatch, capsys, tmp_path):
    stop_after_sleeps(monkeypatch, 2)

    class BrokenClient:
        def version(self):
            raise KeyError("Version")

    with pytest.raises(Stop):
        reconciler.watch(None, BrokenClient, str(tmp_path / "m.json"), 60)
    assert capsys.readouterr().out.count("unexpected KeyError: 'Version'; starting over") == 2


def test_describe_never_raises_whatever_the_entry_holds():
    assert reconciler._describe({"container": "db", "ports": ["8080:80", {"host_port": 5432}]}) == \
        'db 8080:80,{"host_port": 5432}'
    assert reconciler._describe({"container": "db", "ports": "8080:80"}) == "db 8080:80"
    assert reconciler._describe(["odd"]) == "['odd']"


class Enough(BaseException):
    """Ends watch() from inside its loop (it outlives every Exception)."""


class FirewalldEngine:
    """Docker 29 under firewalld: ``reloads`` lists ReloadedAt as each info() call sees it."""

    def __init__(self, reloads):
        self.reloads = list(reloads)
        self.windows = []

    def version(self):
        return {"Version": "29.7.2", "ApiVersion": "1.52"}

    def info(self):
        reloaded_at = self.reloads.pop(0) if len(self.reloads) > 1 else self.reloads[0]
        return {"FirewallBackend": {"Driver": "iptables+firewalld",
                                    "Info": [["ReloadedAt", reloaded_at]] if reloaded_at else []}}

    def events(self, since, until, filters):
        self.windows.append(until - since)
        if len(self.windows) == 6:
            raise Enough()
        return []


def test_watch_applies_everything_once_docker_has_redone_its_rules_after_a_firewalld_reload(
        monkeypatch, capsys, tmp_path):
    passes = []
    monkeypatch.setattr(reconciler.EngineSession, "apply_all", lambda self: passes.append(self) or 0)
    # info() calls: engine_info (the baseline), then one after each window.
    engine = FirewalldEngine(["", "", "", "2026-11-23T00:00:00Z", "2026-11-23T00:00:00Z"])
    with pytest.raises(Enough):
        reconciler.watch(None, lambda: engine, str(tmp_path / "m.json"), 600)
    assert engine.windows == [2] * 6, "windows of FIREWALLD_POLL_SECONDS on a firewalld host"
    assert len(passes) == 2, "the pass at connect, and one after the reload; none in between"
    out = capsys.readouterr().out
    assert "following firewalld reloads" in out
    assert out.count("firewalld reloaded (Docker re-created its rules at 2026-11-23T00:00:00Z)") == 1


def recording_requests(monkeypatch, fail_for=()):
    """apply_request as the reconciler calls it, recording each request; containers in ``fail_for``
    raise an error no handler expects."""
    requests = []

    def apply_request(runner, client, engine, request):
        if request["container"] in fail_for:
            raise TypeError("'int' object is not iterable")
        requests.append((request["container"], request["state"]))
        return None, Outcome(changed=False, engine={})

    monkeypatch.setattr(reconciler, "apply_request", apply_request)
    monkeypatch.setattr(reconciler.EngineSession, "remove_orphaned_rules", lambda self: 0)
    return requests


def test_an_entry_that_fails_unexpectedly_does_not_stop_the_entries_after_it(monkeypatch, capsys, tmp_path):
    requests = recording_requests(monkeypatch, fail_for=("web",))
    state = tmp_path / "m.json"
    entries = [{"container": "web", "ports": 5}, {"container": "db", "ports": ["15432:5432/tcp"]}]
    update_state(str(state), lambda old: entries)
    assert reconciler.EngineSession(None, None, None, str(state)).apply_all() == 1
    assert requests == [("db", "present")]
    assert "FAILED web 5: unexpected TypeError" in capsys.readouterr().out


@pytest.mark.parametrize("action, state", [("start", "present"), ("die", "absent")])
def test_a_recorded_containers_start_applies_and_its_death_removes(monkeypatch, tmp_path, action, state):
    requests = recording_requests(monkeypatch)
    path = tmp_path / "m.json"
    update_state(str(path), lambda entries: [{"container": "db", "ports": ["15432:5432/tcp"]}])
    event = {"Type": "container", "Action": action, "Actor": {"ID": "d" * 64, "Attributes": {"name": "db"}}}
    assert reconciler.EngineSession(None, None, None, str(path)).handle_event(event) == 0
    assert requests == [("db" if state == "present" else "d" * 64, state)]


@pytest.mark.parametrize("docker_host", ["tcp://127.0.0.1:2375", "ssh://hp@engine.example"])
def test_the_orphan_sweep_runs_only_against_this_hosts_own_engine(monkeypatch, docker_host):
    """An engine reached over TCP or ssh does not list this host's containers: sweeping by its list
    would delete every local mapping."""
    swept = []
    monkeypatch.setattr(reconciler, "remove_orphans", lambda *args: swept.append(args) or [])
    client = types.SimpleNamespace(connection=from_params({"docker_host": docker_host}, {}))
    assert reconciler.EngineSession(None, client, None, "/nonexistent").remove_orphaned_rules() == 0
    assert swept == []
    local = types.SimpleNamespace(connection=from_params({"docker_host": "unix:///var/run/docker.sock"}, {}))
    monkeypatch.setattr(reconciler.docker_api, "container_ids", lambda client: [])
    reconciler.EngineSession(None, local, None, "/nonexistent").remove_orphaned_rules()
    assert len(swept) == 1


def test_a_pass_removes_the_ports_whose_end_has_come_then_their_record(monkeypatch, capsys, tmp_path):
    """Issue 37: at expiry (and at boot, `apply` being one pass) a temporary port's rules go, then
    its record; a lasting port of the same container stays; a removal that fails is kept to retry."""
    requests = []

    def apply_request(runner, client, engine, request):
        requests.append((request["state"], list(request["ports"])))
        if request["state"] == "absent" and failing:
            raise reconciler.REQUEST_FAILURES[0]("nft said no")
        return None, Outcome(changed=False, engine={})

    monkeypatch.setattr(reconciler, "apply_request", apply_request)
    monkeypatch.setattr(reconciler.EngineSession, "remove_orphaned_rules", lambda self: 0)
    monkeypatch.setattr(reconciler.EngineSession, "_exists", lambda self, container: True)
    state = str(tmp_path / "m.json")
    entry = {"container": "web", "network": None, "ports": ["8080:80/tcp", "5432:5432/tcp"],
             "expires_at": {"5432:5432/tcp": "2020-01-01T00:00:00Z"}}
    lasting = dict(entry, container="db", expires_at={"5432:5432/tcp": "2999-01-01T00:00:00Z"})
    update_state(state, lambda old: [lasting, entry])
    session = reconciler.EngineSession(None, None, None, state)
    failing = True
    assert session.apply_all() == 1
    assert load_state(state)[1] == entry, "a removal that failed keeps its record, to be tried again"
    assert ("present", ["8080:80/tcp", "5432:5432/tcp"]) in requests and ("present", ["8080:80/tcp"]) in requests
    assert len(requests) == 3, "the port whose end has come is not applied again meanwhile"
    failing = False
    requests.clear()
    assert session.apply_all() == 0
    assert requests[0] == ("absent", ["5432:5432/tcp"])
    assert sorted(requests[1:]) == [("present", ["8080:80/tcp"]), ("present", ["8080:80/tcp", "5432:5432/tcp"])]
    assert load_state(state)[1] == {"container": "web", "network": None, "ports": ["8080:80/tcp"]}
    assert "expired web 5432:5432/tcp: removing it" in capsys.readouterr().out
    assert 0 < session.next_end() <= (datetime(2999, 1, 1, tzinfo=timezone.utc) - datetime.now(timezone.utc)).total_seconds()


class PlainEngine(FirewalldEngine):
    def info(self):
        return {}


def test_watch_ends_its_window_at_the_next_end(monkeypatch, tmp_path):
    """A temporary mapping ends within a second of its time, not at the end of a 600 s window."""
    monkeypatch.setattr(reconciler.EngineSession, "apply_all", lambda self: 0)
    expired = []
    monkeypatch.setattr(reconciler.EngineSession, "expire_due", lambda self: expired.append(1) or 0)
    state = str(tmp_path / "m.json")
    end = (datetime.now(timezone.utc) + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    update_state(state, lambda old: [{"container": "db", "ports": ["5432:5432/tcp"], "expires_at": {"5432:5432/tcp": end}}])
    engine = PlainEngine([""])
    with pytest.raises(Enough):
        reconciler.watch(None, lambda: engine, state, 600)
    assert 28 <= engine.windows[0] <= 30 and len(expired) == 5, engine.windows
