"""The reconciler service when dockerd does not answer: a clear failure, or retrying."""
import pytest

from ansible_collections.hotport.docker.plugins.module_utils import reconciler

NO_DAEMON = "unix:///nonexistent/hotport-test.sock"


def test_apply_without_a_daemon_fails_with_the_reason(capsys, tmp_path):
    assert reconciler.main(["apply", "--docker-host", NO_DAEMON, "--state-file", str(tmp_path / "m.json")]) == 1
    assert "FAILED: cannot reach the Docker daemon at " + NO_DAEMON in capsys.readouterr().out


class Stop(Exception):
    pass


def test_watch_keeps_retrying_with_back_off(monkeypatch, capsys, tmp_path):
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        if len(slept) == 5:
            raise Stop()

    monkeypatch.setattr(reconciler.time, "sleep", sleep)

    def connect():
        return reconciler.docker_api.connect(NO_DAEMON, 5)

    with pytest.raises(Stop):
        reconciler.watch(None, connect, str(tmp_path / "m.json"), 60)
    assert slept == [1, 2, 4, 8, 10]
    assert capsys.readouterr().out.count("Docker not reachable") == 5
