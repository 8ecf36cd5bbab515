"""The reconciler service when dockerd does not answer: a clear failure, or retrying."""
import pytest

from ansible_collections.hotport.docker.plugins.module_utils import reconciler

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
