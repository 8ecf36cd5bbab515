# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the engine answers is input: each value that reaches a rule, a batch, a name or the state
file is checked here against what Docker and the kernel allow, before anything changes.

An engine reached over tcp:// can be anyone on the path, and even a local one hands out names
that its users chose (``-o com.docker.network.bridge.name=...`` is taken as it comes). A value
that could change the structure of an iptables-restore or nft batch, or make a DNAT point
anywhere but at a container on its own network, is refused with an error naming it.
"""

from __future__ import annotations

import ipaddress
import re


class EngineAnswerError(RuntimeError):
    """The engine answered something hotport must not write into a rule; nothing was changed."""


CONTAINER_ID = re.compile(r"^[0-9a-f]{64}\Z")
# Docker's own rule for container and network names.
DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
# A Linux interface name (at most 15 bytes) of characters that need no quoting in iptables-save
# output or an nft batch: what Docker itself names bridges (docker0, br-<12 hex>) and more.
BRIDGE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}\Z")
NAME_LIMIT = 255


def container_id(value):
    if not isinstance(value, str) or not CONTAINER_ID.match(value):
        raise EngineAnswerError("the engine answered a container ID that is not 64 hex digits: %r. "
                                "Nothing was changed; check which engine docker_host reaches." % (value,))
    return value


def docker_name(value, what):
    """A container or network name as Docker allows it (a leading '/' dropped)."""
    name = value.lstrip("/") if isinstance(value, str) else value
    if not isinstance(name, str) or len(name) > NAME_LIMIT or not DOCKER_NAME.match(name):
        raise EngineAnswerError("the engine answered a %s name Docker never gives: %r. Nothing was "
                                "changed; check which engine docker_host reaches." % (what, value))
    return name


def bridge_name(value, network):
    if not isinstance(value, str) or not BRIDGE_NAME.match(value):
        raise EngineAnswerError(
            "network %r has the bridge %r, which hotport cannot write into a firewall rule safely: a "
            "bridge name may hold only letters, digits, '_', '.' and '-' (at most 15). Nothing was "
            "changed. Give the network a plain bridge name (docker network create -o "
            "com.docker.network.bridge.name=NAME ...), or use method: sidecar." % (network, value))
    return value


def subnets(network):
    """(subnet, gateway or None) pairs of a network's IPAM configuration."""
    pairs = []
    for config in ((network.get("IPAM") or {}).get("Config") or []):
        try:
            subnet = ipaddress.ip_network(config.get("Subnet") or "", strict=False)
            gateway = ipaddress.ip_address(config["Gateway"]) if config.get("Gateway") else None
        except (ValueError, AttributeError, TypeError):
            continue
        pairs.append((subnet, gateway))
    return pairs


def container_address(value, family, network, network_name, container):
    """A container's address on ``network`` (the inspected network): one of that family, inside one
    of the network's subnets, and none a DNAT must never point at (the gateway, which is the host;
    loopback, multicast, unspecified, the subnet's own network and broadcast addresses). '' stays ''."""
    if not value:
        return ""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is None or address.version != family:
        raise EngineAnswerError("the engine answered %r as container %r's IPv%d address on network %r, "
                                "which is no IPv%d address. Nothing was changed."
                                % (value, container, family, network_name, family))
    inside = [(subnet, gateway) for subnet, gateway in subnets(network) if address in subnet]
    gateways = [gateway for subnet, gateway in inside]
    ends = [(subnet.network_address, subnet.broadcast_address) for subnet, gateway in inside
            if subnet.version == 4 and subnet.num_addresses > 2]
    special = any([address.is_loopback, address.is_multicast, address.is_unspecified, address in gateways,
                   any(address in pair for pair in ends)])
    if not inside or special:
        where = ", ".join(str(subnet) for subnet, gateway in subnets(network)) or "none"
        raise EngineAnswerError(
            "the engine answered %s as container %r's address on network %r, which is %s (the network's "
            "subnets: %s); hotport forwards only to a container address inside its network. Nothing "
            "was changed; check which engine docker_host reaches." % (
                value, container, network_name,
                "outside its network" if not inside else "the gateway or a reserved address", where))
    return str(address)
