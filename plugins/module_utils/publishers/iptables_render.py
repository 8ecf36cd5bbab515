# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hotport's iptables rules for a mapping, and reading them back: Docker's layout per engine
generation (detected from the live ruleset), the rules each renders, and beside them the code that
recognises what was rendered (claims, live_mappings).

Each layout writes what that Docker generation itself writes for ``docker run -p`` (moby's
``iptabler``), plus hotport's ownership comment, in the argument order iptables-save prints, so
that rendered and live rules compare token for token.
"""

from __future__ import annotations

from ansible_collections.hotport.docker.plugins.module_utils.ownership import owner_tag, parse_owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.ports import PortMapping, ordered_sources
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import Claim, LayoutError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import Rule


class Layout:
    """Rules of Docker 20.10 to 27: everything appended, hairpin MASQUERADE always."""

    name = "classic"
    accept_position = 0
    hairpin_masquerade_always = True
    sctp_checksum = True
    drops_remote_loopback = False

    def __init__(self, userland_proxy=True):
        self.userland_proxy = userland_proxy

    def render(self, mapping, endpoint):
        """PortMapping + Endpoint -> the rules Docker would write for it, tagged as ours.

        IPv6 mappings get the same rules for ip6tables, to the container's IPv6 address.
        With allowed_sources, the DNAT and the ACCEPT are written once per source, and an INPUT
        DROP catches the host port for everyone else (not translated, they would reach the host).
        With local_access, the kernel-only loopback (IPv4 only) and hairpin rules of
        userland-proxy=false.
        """
        family, protocol, bridge = mapping.family, mapping.protocol, endpoint.bridge
        ip, host_bits = endpoint.address(family), "/128" if family == 6 else "/32"

        def rule(table, chain, args, position=0):
            return Rule(table, chain, args, position, family)

        match = ("-p", protocol, "-m", protocol)
        tag = ("-m", "comment", "--comment",
               owner_tag(endpoint.container_id, protocol, mapping.host_port))
        host_ip = ("-d", mapping.listen_ip + host_bits) if mapping.listen_ip else ()
        from_outside = ("!", "-i", bridge) if self.userland_proxy else ()
        host_port, cport = str(mapping.host_port), str(mapping.container_port)
        dnat = ("-j", "DNAT", "--to-destination", ("[%s]:%s" if family == 6 else "%s:%s") % (ip, cport))
        sources = [("-s", source) for source in mapping.allowed_sources] or [()]
        open_dnat = self.open_dnat_match(family)
        container_ip = ip + host_bits
        to_host = (*match, "--dport", host_port, *tag)
        to_container = (*match, "--dport", cport, *tag)
        rules = [rule("nat", "DOCKER", (*(source or open_dnat), *host_ip, *from_outside, *to_host, *dnat)) for source in sources]
        rules += [rule("filter", "DOCKER", (*source, "-d", container_ip, "!", "-i", bridge, "-o", bridge, *to_container, "-j", "ACCEPT"),
                       self.accept_position) for source in sources]
        local = mapping.local_access and self.userland_proxy
        if self.hairpin_masquerade_always or not self.userland_proxy or local:
            rules.append(rule("nat", "POSTROUTING", ("-s", container_ip, "-d", container_ip, *to_container, "-j", "MASQUERADE")))
        if protocol == "sctp" and self.sctp_checksum:
            rules.append(rule("mangle", "POSTROUTING", (*match, "--sport", cport, *tag, "-j", "CHECKSUM", "--checksum-fill")))
        if mapping.allowed_sources:
            rules.append(rule("filter", "INPUT", (*host_ip, *to_host, "-j", "DROP"), 1))
        if local and family == 4:
            loopback = host_ip if mapping.loopback_only else ("-d", "127.0.0.0/8")
            rules.append(rule("nat", "OUTPUT", (*loopback, *to_host, *dnat)))
            rules.append(rule("nat", "POSTROUTING", ("-s", "127.0.0.0/8", "-d", container_ip, "-o", bridge, *to_container, "-j", "MASQUERADE")))
        if self.drops_remote_loopback and mapping.loopback_only and family == 4:
            # A neighbour on the link can send to 127.0.0.1, which the DNAT would forward (moby's
            # filterPortMappedOnLoopback).
            rules.append(rule("raw", "PREROUTING", (*host_ip, "!", "-i", "lo", *to_host, "-j", "DROP")))
        if local and not mapping.loopback_only:
            # Ahead of Docker's "-i BRIDGE -j RETURN", which keeps containers' packets untranslated.
            rules += [rule("nat", "DOCKER", (*(source or open_dnat), *host_ip, "-i", bridge, *to_host, *dnat), 1) for source in sources]
        return rules

    def open_dnat_match(self, family):
        """The source match of a DNAT that admits everyone."""
        return ()

    def mappings(self, rules):
        """hotport's rules -> {(family, owner tag): PortMapping} (live_mappings below). Without the
        userland proxy, Docker's own NAT serves loopback and the bridge for every DNAT of its DOCKER
        chain, so every mapping there has local access, asked for or not."""
        return live_mappings(rules, everyone_local=not self.userland_proxy)

    def claims(self, nat, family):
        """The host ports nat DOCKER publishes (claims below): Docker writes its DNATs there in
        every layout."""
        return claims(nat, family)

    def describe(self):
        return {"layout": self.name, "userland_proxy": self.userland_proxy}


class Docker28Layout(Layout):
    """Docker 28 and 29 (iptables backend): the filter DOCKER chain ends with a per-bridge
    DROP, so the ACCEPT is inserted at the top; hairpin MASQUERADE only without the proxy;
    SCTP checksum rules only on request (never written by us); a loopback mapping's packets from
    anywhere but lo dropped in raw PREROUTING."""

    name = "docker28"
    accept_position = 1
    hairpin_masquerade_always = False
    sctp_checksum = False
    drops_remote_loopback = True

    def open_dnat_match(self, family):
        return ("!", "-s", "fe80::/10") if family == 6 else ()


def detect_layout(nat, filter_table):
    """Choose the layout from the live ruleset (the truth), not from the version string."""
    if "DOCKER" not in filter_table.chains:
        raise LayoutError(
            "Docker's filter DOCKER chain is missing while nat DOCKER exists; dockerd may still "
            "be starting or its iptables set-up is incomplete. Restart dockerd and retry.")
    layout = Docker28Layout if "DOCKER-FORWARD" in filter_table.chains else Layout
    return layout(userland_proxy=_userland_proxy(nat))


def _userland_proxy(nat):
    """Docker's nat OUTPUT jump skips 127.0.0.0/8 exactly when the userland proxy is on."""
    for rule in nat.rules("OUTPUT"):
        if rule.value("-j") == "DOCKER":
            args = rule.args
            return any(args[i:i + 3] == ("!", "-d", "127.0.0.0/8") for i in range(len(args)))
    return True


def _ports(text):
    first, dummy, last = (text or "").partition(":")
    if not first.isdigit():
        return None
    return int(first), int(last or first)


def is_loopback_dnat(rule):
    """Whether ``rule`` is a DNAT of an IPv4 loopback host address (whose raw DROP goes with it)."""
    return rule.value("-j") == "DNAT" and (rule.value("-d") or "").startswith("127.")


def dnat_host_ip(rule):
    """The host address a DNAT rule listens on ('' for any)."""
    address = rule.value("-d") or ""
    return "" if address in ("", "0.0.0.0/0", "::/0") else address.split("/")[0]


def dnat_destination(rule):
    """'172.17.0.2:80', '[fd00::2]:80' or '172.17.0.2:80-82' of a DNAT rule -> (ip, first
    container port or None)."""
    ip, dummy, ports = (rule.value("--to-destination") or "").rpartition(":")
    first = ports.partition("-")[0]
    return ip.strip("[]"), int(first) if first.isdigit() else None


def claims(nat, family):
    """Every DNAT in nat DOCKER -> [Claim]: the host ports Docker or hotport publish ('' host IP for
    every address). A hotport mapping written as several DNATs (per source, hairpin) claims its
    port once."""
    found, tags = [], set()
    for rule in nat.rules("DOCKER"):
        if rule.value("-j") != "DNAT" or (rule.owner_tag and rule.owner_tag in tags):
            continue
        tags.add(rule.owner_tag)
        ports, protocol = _ports(rule.value("--dport")), rule.value("-p")
        if ports is None or protocol is None:
            continue
        ip, port = dnat_destination(rule)
        found.append(Claim(rule, family, protocol, dnat_host_ip(rule), ports[0], ports[1], rule.owner_tag, ip, port))
    return found


def live_mappings(rules, everyone_local=False):
    """Our tagged rules -> {(family, owner tag): PortMapping}, options read back from the rules:
    the sources of the DNATs from outside, local access from a loopback DNAT in nat OUTPUT or a
    hairpin DNAT (``-i BRIDGE``) in nat DOCKER (or for every mapping with ``everyone_local``)."""
    found, sources, local = {}, {}, set()
    for rule in rules:
        tag = parse_owner_tag(rule.owner_tag)
        key = (rule.family, rule.owner_tag)
        if tag is None or rule.table != "nat" or rule.value("-j") != "DNAT":
            continue
        if rule.chain == "OUTPUT" or rule.value("-i"):
            local.add(key)
            continue
        port = dnat_destination(rule)[1]
        if rule.chain == "DOCKER" and port is not None:
            host_ip = dnat_host_ip(rule) or ("::" if rule.family == 6 else "")
            found[key] = (tag[1], tag[2], port, host_ip)
            if rule.value("-s"):
                sources.setdefault(key, set()).add(rule.value("-s"))
    return dict((key, PortMapping(*fields, allowed_sources=ordered_sources(sources.get(key, ())),
                                  local_access=everyone_local or key in local))
                for key, fields in found.items())
