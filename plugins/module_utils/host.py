# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's own side of a host port: sockets listening on it, the addresses it has, the
bridge sysctl that loopback access needs. Read through a Runner, so that a test namespace
is seen from inside (``ip netns exec NS cat /proc/net/tcp`` lists that namespace's sockets).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

# /proc/net files per protocol; the TCP state column 0A is LISTEN, UDP 07 is a bound socket.
SOCKET_TABLES = {"tcp": (("/proc/net/tcp", "/proc/net/tcp6"), "0A"),
                 "udp": (("/proc/net/udp", "/proc/net/udp6"), "07")}
SCTP_ENDPOINTS = "/proc/net/sctp/eps"


# hotport-reconcile's code, on its command line (roles/port_map/files/hotport-reconcile): a root
# process of it holds mapped ports (port_holder.py).
PORT_HOLDER_MARK = "hotport.docker.plugins.module_utils.reconciler"


@dataclass(frozen=True)
class Listener:
    """A socket bound on the host: protocol, address ('' for any) and port; its owner's uid and
    its inode (which process holds it: socket_owner)."""

    protocol: str
    address: str
    port: int
    uid: int = -1
    inode: int = 0

    def describe(self):
        address = self.address or "*"
        if ":" in address:
            address = "[%s]" % address
        return "%s:%d/%s" % (address, self.port, self.protocol)


def _proc_address(text):
    """'0100007F' (IPv4, little-endian) or a 32-digit IPv6 word dump -> address text, '' for any."""
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        address = ipaddress.IPv4Address(raw[::-1])
    else:
        words = b"".join(raw[index:index + 4][::-1] for index in range(0, 16, 4))
        address = ipaddress.IPv6Address(words)
        if address.ipv4_mapped:
            address = address.ipv4_mapped
    return "" if address.is_unspecified else str(address)


def parse_proc_sockets(text, protocol, state):
    """One /proc/net/{tcp,udp}[6] file -> Listeners in the given state."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != state:
            continue
        address, dummy, port = fields[1].partition(":")
        uid, inode = (int(fields[7]), int(fields[9])) if len(fields) > 9 and fields[9].isdigit() else (-1, 0)
        found.append(Listener(protocol, _proc_address(address), int(port, 16), uid, inode))
    return found


def parse_sctp_endpoints(text):
    """/proc/net/sctp/eps -> Listeners (LPORT is the 6th column, LADDRS the rest)."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 9 or not fields[5].isdigit():
            continue
        uid, inode = (int(fields[6]), int(fields[7])) if fields[6].isdigit() and fields[7].isdigit() else (-1, 0)
        for address in fields[8:]:
            found.append(Listener("sctp", "" if address in ("0.0.0.0", "::") else address, int(fields[5]), uid, inode))
    return found


def listeners(runner):
    """Every socket listening (TCP, SCTP) or bound (UDP) on this host -> list of Listener."""
    found = []
    for protocol, (paths, state) in SOCKET_TABLES.items():
        for path in paths:
            rc, out, dummy = runner.run(["cat", path])
            if rc == 0:
                found.extend(parse_proc_sockets(out, protocol, state))
    rc, out, dummy = runner.run(["cat", SCTP_ENDPOINTS])
    if rc == 0:
        found.extend(parse_sctp_endpoints(out))
    return found


def clashing_listeners(found, mapping):
    """Listeners that a mapping would shadow: same protocol and port, on its host address, on
    any address, or (for a mapping on every address) on one address. A loopback listener is
    shadowed only when the mapping also catches loopback traffic (local_access)."""
    clashes = []
    for listener in found:
        if listener.protocol != mapping.protocol or listener.port != mapping.host_port:
            continue
        if not listener.address:
            clashes.append(listener)  # every address, of one family or both: shadowed either way
            continue
        address = ipaddress.ip_address(listener.address)
        if address.version != mapping.family or (mapping.listen_ip and listener.address != mapping.listen_ip):
            continue
        if address.is_loopback and not mapping.local_access:
            continue
        clashes.append(listener)
    return clashes


@dataclass(frozen=True)
class SocketOwner:
    """The process that holds a socket."""

    pid: int
    uid: int
    command: str
    holds_ports: bool  # hotport's own reconciler, holding a mapped port

    def describe(self):
        return "PID %d (%s, uid %d)" % (self.pid, self.command, self.uid)


def socket_owner(inode, proc="/proc"):
    """The process (SocketOwner) one of whose descriptors is the socket ``inode``; None when no
    process this run may look into holds it."""
    if not inode:
        return None
    link = "socket:[%d]" % inode
    for pid in (name for name in os.listdir(proc) if name.isdigit()):
        folder = os.path.join(proc, pid, "fd")
        try:
            if not any(os.readlink(os.path.join(folder, fd)) == link for fd in os.listdir(folder)):
                continue
            uid = os.stat(os.path.join(proc, pid)).st_uid
            with open(os.path.join(proc, pid, "comm"), encoding="utf-8", errors="replace") as handle:
                command = handle.read(64).strip()
            with open(os.path.join(proc, pid, "cmdline"), "rb") as handle:
                cmdline = handle.read(64 * 1024).decode("utf-8", "replace")
        except OSError:
            continue  # gone, or not ours to look into
        return SocketOwner(int(pid), uid, command, uid == 0 and PORT_HOLDER_MARK in cmdline)
    return None


def held_by_hotport(listener):
    """Whether ``listener`` is a socket hotport's reconciler holds a mapped port with (no clash)."""
    owner = socket_owner(listener.inode)
    return owner is not None and owner.holds_ports


def interface_addresses(runner):
    """{interface: [ipaddress.ip_interface]} of this host (``ip -o addr show``); None when ip fails."""
    rc, out, err = runner.run(["ip", "-o", "addr", "show"])
    if rc != 0:
        return None
    found = {}
    for line in out.splitlines():
        words = line.split()
        for index, word in enumerate(words[:-1]):
            if word in ("inet", "inet6") and len(words) > 1:
                try:
                    address = ipaddress.ip_interface(words[index + 1])
                except ValueError:
                    continue
                found.setdefault(words[1].split("@")[0], []).append(address)
    return found


def own_addresses(interfaces):
    """The addresses of an interface_addresses() answer, as text."""
    return set(str(address.ip) for addresses in interfaces.values() for address in addresses)


def allow_loopback_routing(runner, bridge):
    """route_localnet on the bridge: lets a packet from 127.0.0.1 leave by the bridge after
    OUTPUT DNAT (what Docker sets with userland-proxy=false). Returns an error text or ''."""
    key = "net.ipv4.conf.%s.route_localnet" % bridge
    rc, out, err = runner.run(["sysctl", "-n", key])
    if rc == 0 and out.strip() == "1":
        return ""
    rc, out, err = runner.run(["sysctl", "-q", "-w", key + "=1"])
    return "" if rc == 0 else "sysctl -w %s=1 failed: %s" % (key, (err or out).strip())


def forget_udp_flows(runner, flows):
    """Drop conntrack entries for newly mapped UDP host ports ``flows`` ([(family, port)]), as
    Docker does: an existing un-NATed flow would otherwise keep bypassing the new mapping.
    -> warnings."""
    flows = sorted(set(flows))
    if not flows:
        return []
    if not runner.which("conntrack"):
        return ["conntrack not found: existing UDP flows to %s may bypass the new mapping until "
                "they expire; install conntrack." % ", ".join(sorted(set(str(port) for family, port in flows)))]
    for family, port in flows:
        # rc 1 means no entry matched, which is fine.
        runner.run(["conntrack", "-D", "-f", "ipv%d" % family, "-p", "udp", "--orig-port-dst", str(port)])
    return []
