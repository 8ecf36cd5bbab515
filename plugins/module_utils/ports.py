# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and validate port specifications into PortMapping values (pure).

Accepts Docker's ``-p`` syntax ``[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/PROTO]``
and the equivalent dict form; ranges expand to one PortMapping per port, as Docker does.
A mapping is IPv4 unless its host IP is IPv6 (``[::]`` for every IPv6 address of the host).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

PROTOCOLS = ("tcp", "udp", "sctp")
ANY_ADDRESS = {4: "0.0.0.0", 6: "::"}  # every address of the family, as Docker writes it
DICT_KEYS = ("host_ip", "host_port", "container_port", "protocol", "allowed_sources", "local_access")
SPEC_PUNCTUATION = ".:-/[]"
# Docker 28 never forwards link-local IPv6 sources; neither does an allow-list of ours.
LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")


class PortSpecError(ValueError):
    """A port specification that cannot be mapped; the message names the fix."""


@dataclass(frozen=True, order=True)
class PortMapping:
    """One host port forwarded to one container port. ``host_ip`` '' means every IPv4 address
    of the host, '::' every IPv6 address.

    ``allowed_sources``: CIDRs that may reach it (empty: everyone). ``local_access``: also
    from the host's loopback and from containers on the host (hairpin), by kernel rules.
    """

    protocol: str
    host_port: int
    container_port: int
    host_ip: str = ""
    allowed_sources: tuple = ()
    local_access: bool = False

    @property
    def family(self):
        """4 or 6: which of iptables and ip6tables holds the mapping's rules."""
        return address_family(self.host_ip)

    @property
    def key(self):
        """What identifies a mapping on the host: Docker refuses two owners of it."""
        return (self.protocol, self.host_port, self.family)

    @property
    def listen_ip(self):
        """The one host address the mapping is limited to; '' for every address of its family."""
        return "" if self.host_ip in ("", "::") else self.host_ip

    def spec(self):
        """The mapping in Docker's ``-p`` syntax."""
        prefix = ("[%s]:" if self.family == 6 else "%s:") % self.host_ip if self.host_ip else ""
        return "%s%d:%d/%s" % (prefix, self.host_port, self.container_port, self.protocol)

    @property
    def loopback_only(self):
        return _is_loopback(self.host_ip)

    def as_dict(self):
        return {
            "host_ip": self.host_ip or "0.0.0.0",
            "host_port": self.host_port,
            "container_port": self.container_port,
            "protocol": self.protocol,
            "allowed_sources": list(self.allowed_sources),
            "local_access": self.local_access,
        }

    def as_request(self):
        """How the state file records it: the -p string, or a dict when options go with it."""
        if not (self.allowed_sources or self.local_access):
            return self.spec()
        item = {"host_port": self.host_port, "container_port": self.container_port,
                "protocol": self.protocol, "local_access": self.local_access,
                "allowed_sources": list(self.allowed_sources)}
        if self.host_ip:
            item["host_ip"] = self.host_ip
        return item


def address_family(text):
    """4 or 6 for an address or network text (an empty one, 'every IPv4 address', is 4)."""
    return 6 if ":" in text else 4


def _is_loopback(host_ip):
    return bool(host_ip) and ipaddress.ip_address(host_ip).is_loopback


def _port_range(text, what, item):
    """'8080' -> (8080, 8080); '8000-8010' -> (8000, 8010)."""
    text = str(text).strip()
    if text == "":
        raise PortSpecError(
            "%r: the %s is missing. hotport publishes explicit host ports only: "
            "write HOST_PORT:CONTAINER_PORT, for example 8080:80." % (item, what))
    first, sep, last = text.partition("-")
    if not sep:
        last = first
    numbers = []
    for part in (first, last):
        if not part.isdigit():
            raise PortSpecError(
                "%r: the %s %r is not a port number or a range START-END of port numbers."
                % (item, what, text))
        number = int(part)
        if not 1 <= number <= 65535:
            raise PortSpecError(
                "%r: the %s %d is out of range; ports are 1 to 65535." % (item, what, number))
        numbers.append(number)
    if numbers[0] > numbers[1]:
        raise PortSpecError(
            "%r: the %s range %s is reversed; write it low-high, %d-%d."
            % (item, what, text, numbers[1], numbers[0]))
    return numbers[0], numbers[1]


def _protocol(text, item):
    protocol = str(text or "tcp").strip().lower()
    if protocol not in PROTOCOLS:
        raise PortSpecError(
            "%r: unknown protocol %r; use one of %s." % (item, text, ", ".join(PROTOCOLS)))
    return protocol


def _host_ip(text, item):
    text = str(text or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text in ("", "0.0.0.0"):
        return ""
    if "%" in text:
        raise PortSpecError(
            "%r: host IP %r carries an IPv6 zone (%%...), which a firewall rule cannot match on; give the "
            "address without it, or leave it out." % (item, text))
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise PortSpecError(
            "%r: host IP %r is not an IP address; give an address of this host, "
            "or leave it out to listen on every address." % (item, text))
    if address.version == 6 and address.is_loopback:
        raise PortSpecError(
            "%r: ::1 cannot be forwarded to a container by kernel rules (Linux never routes ::1 "
            "off the host; Docker serves it with docker-proxy only). Map 127.0.0.1 for the host "
            "itself, or [::] / an IPv6 address of the host." % (item,))
    if address.version == 6 and address.ipv4_mapped:
        raise PortSpecError("%r: write the IPv4 address %s itself, not as %s."
                            % (item, address.ipv4_mapped, text))
    return str(address)


def _allowed_sources(value, item):
    """A list (or comma-separated text) of IPv4 and IPv6 networks -> sorted tuple of CIDR texts."""
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)):
        raise PortSpecError("%r: allowed_sources is a list of networks such as ['10.0.0.0/8']." % (item,))
    networks = set()
    for text in value:
        text = str(text).strip()
        if "%" in text:
            raise PortSpecError("%r: allowed source %r carries an IPv6 zone (%%...), which a firewall rule "
                                "cannot match on; give the network without it." % (item, text))
        try:
            network = ipaddress.ip_network(text)
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise PortSpecError(
                    "%r: allowed source %r is not an IP address or network (CIDR such as "
                    "10.0.0.0/8 or 2001:db8::/32)." % (item, text))
            raise PortSpecError(
                "%r: allowed source %s has host bits set; write the network, %s."
                % (item, text, loose.with_prefixlen))
        if network.version == 6 and network.overlaps(LINK_LOCAL_V6):
            raise PortSpecError(
                "%r: allowed source %s is link-local (fe80::/10), which is never forwarded to a "
                "container; give global or unique-local IPv6 networks." % (item, text))
        networks.add(network)
    return ordered_sources(networks)


def ordered_sources(networks):
    """Networks (objects or CIDR texts) -> tuple of CIDR texts, IPv4 first, in address order;
    a host as ADDRESS/32 (/128), as iptables-save prints it."""
    parsed = set(ipaddress.ip_network(network) for network in networks)
    return tuple(network.with_prefixlen for network in sorted(parsed, key=lambda net: (net.version, net)))


def _sources_of_family(sources, family, item):
    """The allowed sources a mapping of ``family`` takes; none of its family is an error (the
    mapping would be closed to everyone)."""
    mine = tuple(source for source in sources if address_family(source) == family)
    if sources and not mine:
        raise PortSpecError(
            "%r: allowed_sources lists no IPv%d network (%s), so this IPv%d mapping would admit no one; "
            "add the IPv%d networks that may reach it." % (item, family, ", ".join(sources), family, family))
    return mine


def _flag(value, name, item):
    if value in (None, ""):
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise PortSpecError("%r: %s must be true or false, not %r." % (item, name, value))


def _split_spec(spec):
    """Split a -p string into (host_ip, host_ports, container_ports, protocol) texts."""
    text = spec.strip()
    stray = sorted(set(char for char in text if not (char.isalnum() or char in SPEC_PUNCTUATION)))
    if stray:
        raise PortSpecError(
            "%r: character(s) %s cannot appear in a port; the syntax is "
            "[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/PROTO]." % (spec, " ".join(map(repr, stray))))
    body, sep, protocol = text.rpartition("/")
    if not sep:
        body, protocol = text, "tcp"
    if body.startswith("["):
        address, bracket, rest = body[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise PortSpecError(
                "%r: an IPv6 host address must be written [ADDRESS]:HOST_PORT:CONTAINER_PORT." % spec)
        host_ip, rest = address, rest[1:]
        parts = rest.split(":")
        if len(parts) != 2:
            raise PortSpecError(
                "%r: expected [HOST_IP]:HOST_PORT:CONTAINER_PORT after the address." % spec)
        return host_ip, parts[0], parts[1], protocol
    parts = body.split(":")
    if len(parts) == 1:
        raise PortSpecError(
            "%r: no host port given. hotport publishes explicit host ports only: "
            "write HOST_PORT:CONTAINER_PORT, for example 8080:%s." % (spec, parts[0] or "80"))
    if len(parts) == 2:
        return "", parts[0], parts[1], protocol
    if len(parts) == 3:
        return parts[0], parts[1], parts[2], protocol
    raise PortSpecError(
        "%r: too many ':' separators; the syntax is [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO] "
        "(write an IPv6 host address in brackets)." % spec)


def parse_port_item(item, allowed_sources=(), local_access=False):
    """One item of the ``ports`` option (string or dict) -> list of PortMapping.

    ``allowed_sources`` and ``local_access`` apply unless a dict item sets its own.
    """
    sources, local = _allowed_sources(allowed_sources, "allowed_sources"), _flag(local_access, "local_access", item)
    if isinstance(item, dict):
        unknown = sorted(set(item) - set(DICT_KEYS))
        if unknown:
            raise PortSpecError(
                "%r: unknown key(s) %s; a port dict takes %s."
                % (item, ", ".join(unknown), ", ".join(DICT_KEYS)))
        if item.get("container_port") in (None, ""):
            raise PortSpecError("%r: container_port is required." % (item,))
        if item.get("host_port") in (None, ""):
            raise PortSpecError(
                "%r: host_port is required; hotport publishes explicit host ports only." % (item,))
        host_ip = item.get("host_ip")
        host_ports, container_ports = item["host_port"], item["container_port"]
        protocol = item.get("protocol")
        if "allowed_sources" in item:
            sources = _allowed_sources(item["allowed_sources"], item)
        if "local_access" in item:
            local = _flag(item["local_access"], "local_access", item)
    elif isinstance(item, (str, int)) and not isinstance(item, bool):
        host_ip, host_ports, container_ports, protocol = _split_spec(str(item))
    else:
        raise PortSpecError(
            "%r: a port is a string such as '8080:80/tcp' or a dict with host_port and "
            "container_port." % (item,))

    protocol = _protocol(protocol, item)
    host_ip = _host_ip(host_ip, item)
    host_first, host_last = _port_range(host_ports, "host port", item)
    cont_first, cont_last = _port_range(container_ports, "container port", item)
    if host_last - host_first != cont_last - cont_first:
        raise PortSpecError(
            "%r: the host range has %d port(s) and the container range %d; they must be the "
            "same length (hotport does not pick a free host port for you)."
            % (item, host_last - host_first + 1, cont_last - cont_first + 1))
    offset = cont_first - host_first
    if _is_loopback(host_ip):
        local = True  # a loopback host address is reached from the host only
    sources = _sources_of_family(sources, address_family(host_ip), item)
    return [PortMapping(protocol, port, port + offset, host_ip, sources, local)
            for port in range(host_first, host_last + 1)]


def parse_ports(items, allowed_sources=(), local_access=False):
    """The whole ``ports`` option -> sorted, de-duplicated list of PortMapping.

    Two different targets for one host port, or a specific host IP next to "any
    address" on the same port, are refused: Docker would refuse them too.
    """
    mappings = {}
    for item in items or []:
        for mapping in parse_port_item(item, allowed_sources, local_access):
            mappings.setdefault(mapping, item)
    by_key = {}
    for mapping, item in sorted(mappings.items()):
        for other, other_item in by_key.get(mapping.key, []):
            if "" in (mapping.listen_ip, other.listen_ip) or mapping.host_ip == other.host_ip:
                raise PortSpecError(
                    "%r and %r both claim host port %s/%d; give each host port one target."
                    % (other_item, item, mapping.protocol, mapping.host_port))
        by_key.setdefault(mapping.key, []).append((mapping, item))
    return sorted(mappings)
