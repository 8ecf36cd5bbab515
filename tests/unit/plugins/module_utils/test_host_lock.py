"""The host lock against a local user (issue 34): only its owner can open it, a holder cannot
freeze runs for ever, and the error names the holder."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.runners import HostLock, LockError

NOBODY = 65534
HOLD = "import fcntl, os, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"


@pytest.fixture
def reachable(tmp_path):
    """A folder the unprivileged user can reach (pytest's own are root's alone)."""
    folder = tempfile.mkdtemp(prefix="hotport-lock-", dir="/tmp")
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


def hold_as(uid, path):
    """A process of ``uid`` holding ``path``'s lock (it must be able to open the file)."""
    process = subprocess.Popen(["/usr/bin/python3", "-c", HOLD, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: os.setuid(uid), text=True)
    return process


def test_the_lock_file_is_the_owners_alone(reachable):
    path = os.path.join(reachable, "hotport.lock")
    with HostLock(path):
        pass
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    holder = hold_as(NOBODY, path)
    assert holder.wait(timeout=10) != 0 and "Permission denied" in holder.stderr.read()


def test_an_old_world_readable_lock_is_made_the_owners_alone(tmp_path):
    path = tmp_path / "hotport.lock"
    path.write_text("")
    os.chmod(str(path), 0o644)
    with HostLock(str(path)):
        pass
    assert oct(os.stat(str(path)).st_mode & 0o777) == "0o600"


def test_a_held_lock_is_waited_for_a_bounded_time_and_the_holder_named(reachable):
    path = os.path.join(reachable, "hotport.lock")
    with HostLock(path):
        pass
    os.chmod(path, 0o644)  # as an earlier version left it: anyone could open it read-only
    holder = hold_as(NOBODY, path)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(LockError, match="held for 1 s by PID %d \\(python3" % holder.pid):
            with HostLock(path, timeout=1):
                pass
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
    with HostLock(path, timeout=1):
        pass


def test_a_symlinked_lock_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("root's file\n")
    link = tmp_path / "hotport.lock"
    link.symlink_to(target)
    with pytest.raises(LockError, match="symlink"):
        with HostLock(str(link)):
            pass
    assert target.read_text() == "root's file\n"


def test_check_mode_creates_no_lock_file(tmp_path):
    path = tmp_path / "hotport.lock"
    with HostLock(str(path), create=False):
        pass
    assert not path.exists()
