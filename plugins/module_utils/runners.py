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
import subprocess

LOCK_PATH = "/run/hotport.lock"


class HostLock:
    """Serialise hotport runs on one host: read, plan and apply must not interleave."""

    def __init__(self, path=LOCK_PATH):
        self.path = path
        self.handle = None

    def __enter__(self):
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory)
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


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
