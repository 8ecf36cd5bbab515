# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RootlessKit, which runs a rootless Docker engine: where its network namespace is, and its port
API (the REST socket ``api.sock`` of its state dir, what ``rootlessctl`` calls), over the standard
library. Everything it answers is checked before it is used: it runs as the same unprivileged user,
but its answers reach commands and rules all the same.

dockerd-rootless.sh keeps the engine's socket at ``$XDG_RUNTIME_DIR/docker.sock`` and RootlessKit's
state dir at ``$XDG_RUNTIME_DIR/dockerd-rootless`` (``child_pid``, ``api.sock``).
"""

from __future__ import annotations

import dataclasses
import fcntl
import ipaddress
import json
import os
import stat
import struct
from urllib.parse import urlsplit

from ansible_collections.hotport.docker.plugins.module_utils.docker_client import UnixHTTPConnection
from ansible_collections.hotport.docker.plugins.module_utils.ownership import owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import LayoutError, PublisherError
from ansible_collections.hotport.docker.plugins.module_utils.safe_files import UnsafeFileError, trusted_folder

STATE_DIR = "dockerd-rootless"
ANSWER_LIMIT = 4 * 1024 * 1024
PROTOCOLS = ("tcp", "udp", "sctp")
# ioctl(2) on a /proc/PID/ns/user descriptor: the uid that owns that user namespace (Linux 4.11+).
NS_GET_OWNER_UID = 0xB704


class RootlessKitError(PublisherError):
    """RootlessKit's port API refused or failed a call; the message says what was undone."""


@dataclasses.dataclass(frozen=True)
class Port:
    """One port RootlessKit forwards: ``parent_ip:parent_port`` on the host to ``child_ip:child_port``
    in the engine's network namespace. ``owner_tag`` when hotport's (see RootlessKit.ours)."""

    protocol: str
    parent_ip: str
    parent_port: int
    child_ip: str
    child_port: int
    port_id: int = 0
    owner_tag: str = None

    @property
    def family(self):
        return 6 if ":" in self.parent_ip else 4

    @property
    def same_as(self):
        return ("rootlesskit", self.protocol, self.parent_ip, self.parent_port, self.child_ip, self.child_port)

    def text(self):
        """As rootlessctl add-ports takes it, and what diff mode shows."""
        return "rootlesskit port %s:%d:%s:%d/%s" % (self.parent_ip, self.parent_port, self.child_ip,
                                                    self.child_port, self.protocol)

    def spec(self):
        return {"proto": self.protocol, "parentIP": self.parent_ip, "parentPort": self.parent_port,
                "childIP": self.child_ip, "childPort": self.child_port}


def port_for(mapping, container_id, child_ip):
    """The RootlessKit port that brings ``mapping``'s host port into the namespace, to the same port
    of its address there (where hotport's DNAT catches it)."""
    return Port(mapping.protocol, mapping.listen_ip or "0.0.0.0", mapping.host_port, child_ip, mapping.host_port,
                owner_tag=owner_tag(container_id, mapping.protocol, mapping.host_port))


def state_dir_of(docker_host):
    """RootlessKit's state dir of the rootless engine at ``docker_host`` (its unix socket's folder +
    dockerd-rootless), or LayoutError naming what is missing."""
    parts = urlsplit(docker_host or "")
    if parts.scheme != "unix" or not parts.path:
        raise LayoutError(
            "the kernel method on a rootless Docker engine works on the engine's own host, through its unix "
            "socket (docker_host unix:///run/user/UID/docker.sock); docker_host is %r. Use that socket, or "
            "method: sidecar. Nothing was changed." % docker_host)
    return os.path.join(os.path.dirname(parts.path), STATE_DIR)


class RootlessKit:
    """One rootless engine's RootlessKit: its state dir, namespace and port API."""

    def __init__(self, state_dir, timeout=30):
        self.state_dir = state_dir
        self.api_socket = os.path.join(state_dir, "api.sock")
        self.timeout = timeout
        try:
            info = os.lstat(state_dir)
        except FileNotFoundError:
            raise LayoutError(
                "this Docker engine runs rootless, and RootlessKit's %s was not found (dockerd-rootless.sh "
                "keeps its state dir beside the engine's socket: $XDG_RUNTIME_DIR/dockerd-rootless). Run "
                "the task as the engine's user, with docker_host its socket, or use method: sidecar. "
                "Nothing was changed." % state_dir)
        if info.st_uid != os.geteuid():
            raise LayoutError(
                "RootlessKit's state dir %s belongs to uid %d, and this run is uid %d: only the engine's own "
                "user can enter its network namespace. Run the task as that user (become_user), or use "
                "method: sidecar. Nothing was changed." % (state_dir, info.st_uid, os.geteuid()))
        found = self._in_state_dir("api.sock", lambda folder, name: os.stat(name, dir_fd=folder, follow_symlinks=False)
                                   if name in os.listdir(folder) else None)
        if found is None or not stat.S_ISSOCK(found.st_mode) or found.st_uid != os.geteuid():
            raise LayoutError(
                "RootlessKit's API socket %s is %s: is the rootless engine running? Nothing was changed."
                % (self.api_socket, "missing" if found is None else "not a socket of uid %d" % os.geteuid()))

    def _in_state_dir(self, name, action):
        """``action(descriptor of the state dir, name)``, the dir reached without following any symlink,
        every folder on its way root's or this user's and written by nobody else, the dir this user's."""
        try:
            with trusted_folder(os.path.join(self.state_dir, name), "RootlessKit state dir", resolve=False) \
                    as (folder, found):
                if folder is None or os.fstat(folder).st_uid != os.geteuid():
                    raise UnsafeFileError("it is missing, or not uid %d's" % os.geteuid())
                return action(folder, found)
        except UnsafeFileError as exc:
            raise LayoutError("RootlessKit's state dir %s cannot be trusted: %s. Nothing was changed."
                              % (self.state_dir, exc))

    def child_pid(self):
        """The PID whose namespaces the engine lives in (RootlessKit's child), checked: ``child_pid``
        read without following a symlink, the process this user's, in a user namespace of its own
        that this user owns (so entering it gives this run nothing it did not have)."""
        path = os.path.join(self.state_dir, "child_pid")

        def read(folder, name):
            try:
                handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
            except OSError as exc:
                raise LayoutError("cannot read RootlessKit's %s: %s. Is the rootless engine running? Nothing was "
                                  "changed." % (path, exc))
            with os.fdopen(handle, "rb") as opened:
                return opened.read(32).decode("ascii", "replace").strip()

        text = self._in_state_dir("child_pid", read)
        if not text.isdigit() or int(text) < 2 or not os.path.exists("/proc/%s/ns/net" % text):
            raise LayoutError("RootlessKit's %s holds %r, not a running process: is the rootless engine running? "
                              "Nothing was changed." % (path, text[:20]))
        pid = int(text)
        problem = _foreign_process(pid)
        if problem:
            raise LayoutError("RootlessKit's %s names PID %d, which %s: hotport enters only the engine's own "
                              "namespaces. Nothing was changed." % (path, pid, problem))
        return pid

    def network_namespace(self, pid):
        """Where the engine's network namespace is bound, seen from here: RootlessKit's --detach-netns
        (dockerd-rootless.sh's default since Docker 26) keeps it at ``netns`` in the state dir of the
        child's mounts, leaving the child itself in the host's; None without it (the child's own)."""
        path = "/proc/%d/root%s" % (pid, os.path.join(self.state_dir, "netns"))
        return path if os.path.exists(path) else None

    def _call(self, method, path, body=None):
        connection = UnixHTTPConnection(self.api_socket, self.timeout)
        try:
            connection.request(method, "/v1" + path, body=None if body is None else json.dumps(body),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read(ANSWER_LIMIT + 1)
        except OSError as exc:
            raise RootlessKitError("RootlessKit's API at %s did not answer %s %s: %s" % (self.api_socket, method, path, exc))
        finally:
            connection.close()
        if len(data) > ANSWER_LIMIT:
            raise RootlessKitError("RootlessKit's API answered %s %s with more than %d bytes; refused"
                                   % (method, path, ANSWER_LIMIT))
        text = data.decode("utf-8", "replace")
        if response.status >= 300:
            raise RootlessKitError("RootlessKit refused %s %s (HTTP %d): %s"
                                   % (method, path, response.status, text.strip()[:300]))
        try:
            return json.loads(text) if text.strip() else None
        except (ValueError, RecursionError):
            raise RootlessKitError("RootlessKit's API answered %s %s with something that is not JSON; refused"
                                   % (method, path))

    def info(self):
        """(port driver, child IP of the namespace's network) as RootlessKit says, checked."""
        info = self._call("GET", "/info")
        info = info if isinstance(info, dict) else {}
        network = info.get("networkDriver") if isinstance(info.get("networkDriver"), dict) else {}
        ports = info.get("portDriver") if isinstance(info.get("portDriver"), dict) else {}
        child_ip = network.get("childIP")
        if not _is_unicast_v4(child_ip):
            raise LayoutError(
                "RootlessKit reports no IPv4 address of the engine's namespace (network driver %r, child IP %r), "
                "to which its ports would forward. The kernel method needs slirp4netns, pasta or vpnkit; use "
                "method: sidecar otherwise. Nothing was changed." % (network.get("driver"), child_ip))
        return str(ports.get("driver") or "unknown"), child_ip

    def ports(self):
        """Every port RootlessKit forwards -> [Port]; entries of another shape are refused."""
        found = []
        for entry in self._call("GET", "/ports") or []:
            spec = entry.get("spec") if isinstance(entry, dict) else None
            try:
                protocol = str(spec["proto"]).rstrip("46")
                port = Port(protocol, str(spec.get("parentIP") or "0.0.0.0"), int(spec["parentPort"]),
                            str(spec.get("childIP") or ""), int(spec.get("childPort") or spec["parentPort"]),
                            int(entry["id"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise RootlessKitError("RootlessKit listed a port hotport cannot read (%s: %r); refused"
                                       % (exc, entry))
            if protocol not in PROTOCOLS or not (0 < port.parent_port < 65536 and 0 < port.child_port < 65536):
                raise RootlessKitError("RootlessKit listed a port hotport cannot read (%r); refused" % entry)
            found.append(port)
        return found

    def add(self, port):
        """Forward ``port`` -> the same Port with its ID."""
        answer = self._call("POST", "/ports", port.spec())
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
            raise RootlessKitError("RootlessKit answered adding %s with %r, no port ID" % (port.text(), answer))
        return dataclasses.replace(port, port_id=answer["id"])

    def remove(self, port):
        self._call("DELETE", "/ports/%d" % port.port_id)


def _foreign_process(pid):
    """Why process ``pid`` is not a rootless engine's namespace holder of this user ('' when it is)."""
    uid = os.geteuid()
    try:
        owner = os.stat("/proc/%d" % pid).st_uid
        handle = os.open("/proc/%d/ns/user" % pid, os.O_RDONLY)
    except OSError as exc:
        return "cannot be read (%s)" % exc.strerror
    try:
        if owner != uid:
            return "is uid %d's, not this user's (uid %d)" % (owner, uid)
        if os.fstat(handle).st_ino == os.stat("/proc/self/ns/user").st_ino:
            return "is in this run's own user namespace, not one RootlessKit made"
        namespace_owner = struct.unpack("I", fcntl.ioctl(handle, NS_GET_OWNER_UID, b"\0" * 4))[0]
    except OSError as exc:
        return "has a user namespace whose owner cannot be read (%s)" % exc.strerror
    finally:
        os.close(handle)
    if namespace_owner != uid:
        return "is in a user namespace of uid %d, not this user's (uid %d)" % (namespace_owner, uid)
    return ""


def _is_unicast_v4(text):
    try:
        address = ipaddress.IPv4Address(text)
    except (ipaddress.AddressValueError, ValueError, TypeError):
        return False
    return not (address.is_unspecified or address.is_multicast or address.is_loopback or address.is_link_local)
