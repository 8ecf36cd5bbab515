# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and validate port specifications into PortMapping values (pure).

Accepts Docker's ``-p`` syntax ``[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/PROTO]``
and the equivalent dict form; ranges expand to one PortMapping per port, as Docker does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

PROTOCOLS = ("tcp", "udp", "sctp")
DICT_KEYS = ("host_ip", "host_port", "container_port", "protocol")
SPEC_PUNCTUATION = ".:-/[]"


class PortSpecError(ValueError):
    """A port specification that cannot be mapped; the message names the fix."""


@dataclass(frozen=True, order=True)
class PortMapping:
    """One host port forwarded to one container port. ``host_ip`` '' means any address."""

    protocol: str
    host_port: int
    container_port: int
    host_ip: str = ""

    @property
    def key(self):
        """What identifies a mapping on the host: Docker refuses two owners of it."""
        return (self.protocol, self.host_port)

    def spec(self):
        """The mapping in Docker's ``-p`` syntax."""
        prefix = self.host_ip + ":" if self.host_ip else ""
        return "%s%d:%d/%s" % (prefix, self.host_port, self.container_port, self.protocol)

    def as_dict(self):
        return {
            "host_ip": self.host_ip or "0.0.0.0",
            "host_port": self.host_port,
            "container_port": self.container_port,
            "protocol": self.protocol,
        }


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
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise PortSpecError(
            "%r: host IP %r is not an IP address; give an address of this host, "
            "or leave it out to listen on every address." % (item, text))
    if address.version == 6:
        raise PortSpecError(
            "%r: IPv6 host address %s is not supported yet; map an IPv4 address "
            "or leave the host IP out." % (item, text))
    return str(address)


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


def parse_port_item(item):
    """One item of the ``ports`` option (string or dict) -> list of PortMapping."""
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
    return [PortMapping(protocol, port, port + offset, host_ip)
            for port in range(host_first, host_last + 1)]


def parse_ports(items):
    """The whole ``ports`` option -> sorted, de-duplicated list of PortMapping.

    Two different targets for one host port, or a specific host IP next to "any
    address" on the same port, are refused: Docker would refuse them too.
    """
    mappings = {}
    for item in items or []:
        for mapping in parse_port_item(item):
            mappings.setdefault(mapping, item)
    by_key = {}
    for mapping, item in sorted(mappings.items()):
        for other, other_item in by_key.get(mapping.key, []):
            if "" in (mapping.host_ip, other.host_ip) or mapping.host_ip == other.host_ip:
                raise PortSpecError(
                    "%r and %r both claim host port %s/%d; give each host port one target."
                    % (other_item, item, mapping.protocol, mapping.host_port))
        by_key.setdefault(mapping.key, []).append((mapping, item))
    return sorted(mappings)
