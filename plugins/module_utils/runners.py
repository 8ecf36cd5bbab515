# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How commands run on the managed host: ``run(argv, data) -> (rc, out, err)`` and
``which(name)``. The module runs them through Ansible; the reconciler service and the tests
with subprocess, the tests inside a throwaway network namespace. And the lock that serialises
hotport's runs on one host."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import time

LOCK_PATH = "/run/hotport.lock"
# Runs take a second or two; a holder for longer than this is stuck, or hostile.
LOCK_TIMEOUT = 60


class LockError(RuntimeError):
    """The host lock could not be taken; the message names its holder and the fix."""


class HostLock:
    """Serialise hotport runs on one host: read, plan and apply must not interleave.

    The lock file is this user's alone (0600, never through a symlink): whoever can open it can
    hold it. The wait is bounded (``timeout`` seconds), and the error names the holder's PID. In
    check mode (``create`` off) a missing lock file is not created: nothing will be written."""

    def __init__(self, path=LOCK_PATH, timeout=LOCK_TIMEOUT, create=True):
        self.path, self.timeout, self.create = path, timeout, create
        self.handle = None

    def __enter__(self):
        flags = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            self.handle = os.open(self.path, flags | (os.O_CREAT if self.create else 0), 0o600)
        except FileNotFoundError:
            if self.create:
                raise
            return self
        except OSError as exc:
            raise LockError("cannot open hotport's lock %s: %s. Remove it if it is a symlink or not a file; "
                            "nothing was changed." % (self.path, exc))
        info = os.fstat(self.handle)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            os.close(self.handle)
            raise LockError("hotport's lock %s is not a file of uid %d (it is uid %d's, mode %04o): whoever owns it "
                            "can hold every run. Remove it; nothing was changed."
                            % (self.path, os.geteuid(), info.st_uid, stat.S_IMODE(info.st_mode)))
        if stat.S_IMODE(info.st_mode) != 0o600:
            os.fchmod(self.handle, 0o600)  # an earlier version made it 0644
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holders = lock_holders(info)
                    os.close(self.handle)
                    raise LockError(
                        "hotport's lock %s has been held for %d s by %s; another hotport run (or whatever holds "
                        "it) must end first. Nothing was changed; retry, or end that process if it is stuck."
                        % (self.path, self.timeout, ", ".join(holders) or "a process this run cannot see"))
                time.sleep(0.1)

    def __exit__(self, *exc_info):
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            os.close(self.handle)
            self.handle = None


def lock_holders(info, locks_text=None):
    """'PID N (command)' of each process /proc/locks says holds a lock on the file of ``info``."""
    if locks_text is None:
        try:
            with open("/proc/locks", encoding="ascii", errors="replace") as handle:
                locks_text = handle.read(1024 * 1024)
        except OSError:
            return []
    device = "%02x:%02x:%d" % (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    holders = []
    for line in locks_text.splitlines():
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[5] != device or not fields[4].isdigit():
            continue
        try:
            with open("/proc/%s/comm" % fields[4], encoding="utf-8", errors="replace") as handle:
                command = handle.read(64).strip()
        except OSError:
            command = "?"
        holders.append("PID %s (%s)" % (fields[4], command))
    return sorted(set(holders))


SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ProcessRunner:
    """Runs commands with subprocess, optionally inside a network namespace
    (``prefix=['ip', 'netns', 'exec', NAME]``): the tests and any service outside Ansible."""

    def __init__(self, prefix=()):
        self.prefix = list(prefix)

    @staticmethod
    def search_path():
        return os.environ.get("PATH", "") + ":" + SBIN_PATH

    def which(self, name):
        return shutil.which(name, path=self.search_path())

    def run(self, argv, data=None):
        # The reconciler service has no AnsibleModule to call run_command on; the modules use ModuleRunner.
        process = subprocess.run(self.prefix + list(argv), input=data, capture_output=True, text=True,  # pylint: disable=ansible-bad-function
                                 check=False, env=dict(os.environ, PATH=self.search_path()))
        return process.returncode, process.stdout, process.stderr


class ModuleRunner:
    """Runs commands through AnsibleModule.run_command, finding sbin tools like get_bin_path."""

    def __init__(self, module):
        self.module = module
        self.paths = {}

    def which(self, name):
        if name not in self.paths:
            self.paths[name] = self.module.get_bin_path(name)
        return self.paths[name]

    def run(self, argv, data=None):
        argv = [self.which(argv[0]) or argv[0]] + list(argv[1:])
        return self.module.run_command(argv, data=data, binary_data=True, check_rc=False)


class NamespaceRunner:
    """Runs commands through ``runner`` inside the user and mount namespaces of process ``pid`` and
    its network namespace, or the one bound at ``net_path``: a rootless engine's, entered as its own
    unprivileged user (where its iptables or nft rules live). Tools are found on the host's PATH
    (the namespace sees the same files)."""

    def __init__(self, runner, pid, net_path=None):
        self.runner = runner
        self.prefix = ["nsenter", "-U", "--preserve-credentials", "-m", "-t", str(pid),
                       "--net=" + net_path if net_path else "-n", "--"]

    def which(self, name):
        return self.runner.which(name)

    def run(self, argv, data=None):
        return self.runner.run(self.prefix + [self.runner.which(argv[0]) or argv[0]] + list(argv[1:]), data)
