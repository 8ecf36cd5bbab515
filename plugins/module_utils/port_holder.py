# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Holding mapped host ports, as Docker 29 holds its own: while a mapping exists, the reconciler
service keeps a socket bound on its host address and port (TCP and SCTP listening, UDP bound),
with a socket filter that drops everything it would receive, so that no other process can take
the port while the DNAT is missing (dockerd restarting, a reboot) and receive the service's
traffic. Packets a DNAT translates never reach these sockets.

Bound without SO_REUSEADDR or SO_REUSEPORT: no other socket, of any user, binds the port on this
address, on every address, or (for a mapping on every address) on one address.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import struct

from ansible_collections.hotport.docker.plugins.module_utils.host import Listener
from ansible_collections.hotport.docker.plugins.module_utils.ports import ANY_ADDRESS

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
# One classic BPF instruction, "ret #0": a socket filter returning 0 drops the packet.
DROP_ALL = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0))
KINDS = {"tcp": (socket.SOCK_STREAM, 0), "udp": (socket.SOCK_DGRAM, 0), "sctp": (socket.SOCK_STREAM, 132)}


def hold(family, protocol, address, port):
    """A socket bound to ``address`` (every address when '') and ``port``, dropping all it receives."""
    kind, number = KINDS[protocol]
    held = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET, kind, number)
    try:
        # struct sock_fprog {unsigned short len; struct sock_filter *filter;}
        held.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HP", 1, ctypes.addressof(DROP_ALL)))
        if family == 6:
            held.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        held.bind((address or ANY_ADDRESS[family], port))
        if kind == socket.SOCK_STREAM:
            held.listen(1)
    except BaseException:
        held.close()
        raise
    return held


class PortHolder:
    """The sockets that hold the host ports of the recorded mappings, kept across passes."""

    def __init__(self, bind=hold):
        self.bind = bind
        self.held = {}

    def keep(self, wanted):
        """Hold exactly ``wanted`` ({(family, protocol, address, port)}) -> messages for the log: a
        port another socket is bound on is said with how to find it, and tried again on the next pass."""
        said = []
        for key in sorted(set(self.held) - set(wanted)):
            self.held.pop(key).close()
        for key in sorted(set(wanted) - set(self.held)):
            family, protocol, address, port = key
            try:
                self.held[key] = self.bind(family, protocol, address, port)
            except OSError as exc:
                said.append(self._refused(key, exc))
        return said

    @staticmethod
    def _refused(key, exc):
        family, protocol, address, port = key
        where = Listener(protocol, address, port).describe()
        if exc.errno != errno.EADDRINUSE:
            return "cannot hold host port %s: %s" % (where, exc.strerror or exc)
        return "cannot hold host port %s: another socket is bound there (find it with `ss -lnp sport = :%d`); " \
               "the mapping's DNAT still takes its outside traffic while it is in place" % (where, port)


def held_ports(entries, parse):
    """The (family, protocol, host address, port) of every kernel mapping the state file's
    ``entries`` record, ``parse`` reading an entry's ports (ports.parse_ports); entries it cannot
    read are left to apply_entry to report."""
    wanted = set()
    for entry in entries:
        if not isinstance(entry, dict) or (entry.get("method") or "kernel") != "kernel":
            continue
        try:
            mappings = parse(entry.get("ports"))
        except (ValueError, TypeError, AttributeError):
            continue  # apply_entry reports the entry
        wanted.update((mapping.family, mapping.protocol, mapping.listen_ip, mapping.host_port) for mapping in mappings)
    return wanted
