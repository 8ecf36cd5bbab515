# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nftables publisher, for Docker's nftables firewall backend: hotport's own tables.

Docker's tables (``ip docker-bridges``, ``ip6 docker-bridges``) are Docker's: re-created at every
start and never written here. hotport keeps ``table ip hotport`` and ``table ip6 hotport``:

- ``nat-prerouting`` and ``nat-output`` (priority dstnat - 1, ahead of Docker's) jump, for
  packets to the host's own addresses, to ``nat-mappings``, which holds the DNATs;
- ``filter-forward`` (priority filter - 1) sets the mark that Docker's ``bridge-accept-fwmark``
  option makes its bridge chains accept, on exactly the DNATed flows of a mapping: an accept in
  another table is not final, and Docker's ``UNPUBLISHED PORT DROP`` would win;
- a plain mapping (no host IP, sources or local access) is no rule of its own but an element of
  its bridge's map ``dnat-BRIDGE`` (host port -> container address and port) and set
  ``forward-BRIDGE`` (the flows to mark), which one DNAT rule and one mark rule per protocol look
  up: a new connection costs one hash look-up however many mappings there are, where a rule per
  mapping made the connection rate fall to a fifth at 10 000 mappings (docs/BENCHMARKS.md);
- ``filter-input`` drops what ``allowed_sources`` leaves untranslated (it would reach the host);
- ``nat-postrouting`` masquerades the loopback and self-hairpin paths of ``local_access``.

Every rule and element of a mapping carries its tag and a digest of what was rendered (``comment
"hotport:ID:tcp/8080 DIGEST"``): it is identified by that comment, whatever form nft prints it in.
The rules no mapping owns (the table's structure) carry ``hotport-table``. One ``nft -f`` batch
per run changes both families, atomically (nft commits a batch whole or not at all).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from ansible_collections.hotport.docker.plugins.module_utils.ownership import TAG_PREFIX, owner_tag, parse_owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.ports import PortMapping, ordered_sources
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import (
    Claim, KernelPublisher, LayoutError, NetfilterError, Snapshot)

TABLE = "hotport"
DOCKER_TABLE = "docker-bridges"
FAMILIES = {4: "ip", 6: "ip6"}
LOOPBACK = {4: "127.0.0.0/8", 6: "::1"}
# hotport's chains: (name, base chain definition or None for a regular chain), created in order.
# Each base chain runs just ahead of Docker's: dstnat - 1, srcnat - 1, filter - 1, written as
# numbers because nft before 1.0.7 (Debian 12) knows "dstnat" for prerouting only.
CHAINS = (
    ("nat-mappings", None),
    ("nat-prerouting", "type nat hook prerouting priority -101; policy accept;"),
    ("nat-output", "type nat hook output priority -101; policy accept;"),
    ("nat-postrouting", "type nat hook postrouting priority 99; policy accept;"),
    ("filter-forward", "type filter hook forward priority -1; policy accept;"),
    ("filter-input", "type filter hook input priority -1; policy accept;"),
)
STRUCTURE = "hotport-table"  # the comment of the rules no mapping owns (structure(): first in their chains)
# Bridge names that can name a map (nft's identifiers); a bridge named otherwise gets rules per mapping.
MAP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
# A bridge's map of plain mappings' DNATs, and its set of their flows to mark: these prefixes + its name.
DNAT_MAP, FORWARD_SET = "dnat-", "forward-"
ACCEPT_MARK_COMMENT = "ALLOW FW MARK"
HANDLE = re.compile(r"\s+# handle (\d+)$")
COMMENT = re.compile(r'\s+comment "((?:[^"\\]|\\.)*)"$')
SET_REFERENCE = re.compile(r"@(\S+)")
PORTS = re.compile(r"\b(tcp|udp|sctp) dport (\d+)(?:-(\d+))?")
NO_MARK = (
    "this Docker engine uses its nftables firewall backend (docker info: FirewallBackend %r), "
    "which drops forwarded packets to a container port it did not publish itself (its \"UNPUBLISHED "
    "PORT DROP\") unless they carry the mark of its bridge-accept-fwmark option, and this engine "
    "has none (no \"ALLOW FW MARK\" rule in table ip docker-bridges). Add "
    "\"bridge-accept-fwmark\": \"0x4000000/0x4000000\" to /etc/docker/daemon.json and restart "
    "dockerd (containers without a restart policy stay stopped), or use method: sidecar, which "
    "publishes through Docker itself and needs neither. Nothing was changed.")


def digest(family, chain, expr):
    return hashlib.sha1(("%d %s %s" % (family, chain, expr)).encode()).hexdigest()[:10]


def is_structure(comment):
    """The table's own rules: ``hotport-table``, or per bridge ``hotport-table BRIDGE[/PROTO] DIGEST``."""
    return comment == STRUCTURE or comment.startswith(STRUCTURE + " ")


@dataclass(frozen=True)
class NftRule:
    """One rule: its statements (``expr``, without the comment) in a chain of a table of
    ``family``; ``handle`` once it is live."""

    family: int
    chain: str
    expr: str
    comment: str = ""
    table: str = TABLE
    handle: int = field(default=0, compare=False)
    owner_tag: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        tag = self.comment.split(" ", 1)[0]
        object.__setattr__(self, "owner_tag", tag if tag.startswith(TAG_PREFIX) else None)

    @property
    def same_as(self):
        """Identity for diffing: hotport's rules by their comment (a mapping's by tag and digest, the
        structure's by its name: a changed digest there is a rule to rewrite, see misplaced), others
        by text."""
        if self.comment.startswith(TAG_PREFIX):
            return (self.family, self.table, self.chain, self.comment)
        if is_structure(self.comment):
            return (self.family, self.table, self.chain, " ".join(self.comment.split(" ")[:2]))
        return (self.family, self.table, self.chain, self.expr, self.comment)

    def statement(self):
        return "%s comment \"%s\"" % (self.expr, self.comment) if self.comment else self.expr

    def text(self):
        """The nft command that adds the rule (what the batch runs and diff mode shows): structure
        rules go to the top of their chain."""
        return "%s rule %s %s %s %s" % ("insert" if self.comment == STRUCTURE else "add", FAMILIES[self.family],
                                        self.table, self.chain, self.statement())

    def delete_command(self):
        return "delete rule %s %s %s handle %d" % (FAMILIES[self.family], self.table, self.chain, self.handle)

    def value(self, keyword):
        """The word after ``keyword`` ('dnat to', 'saddr', 'daddr') in the statements, or None."""
        match = re.search(r"(?:^|\s)%s (?!!=)(\S+)" % re.escape(keyword), self.expr)
        return match.group(1) if match else None


class NftElement(NftRule):
    """One element of a set or map of hotport's table (``chain`` is the set's name): ``expr`` is
    its key, and for a map `` : `` and its value. Elements have no handle: their key names them."""

    @property
    def key(self):
        return self.expr.partition(" : ")[0]

    def text(self):
        key, colon, value = self.expr.partition(" : ")
        return "add element %s %s %s { %s comment \"%s\"%s }" % (
            FAMILIES[self.family], self.table, self.chain, key, self.comment, " : " + value if colon else "")

    def delete_command(self):
        return "delete element %s %s %s { %s }" % (FAMILIES[self.family], self.table, self.chain, self.key)


def tagged(family, chain, expr, tag, kind=NftRule):
    return kind(family, chain, expr, "%s %s" % (tag, digest(family, chain, expr)))


def bridge_structure(family, chain, expr, name):
    """A rule of the table for one bridge (or bridge and protocol), named ``name``: its comment
    carries a digest, so that a rule rendered differently (another accept mark) is rewritten."""
    return NftRule(family, chain, expr, "%s %s %s" % (STRUCTURE, name, digest(family, chain, expr)))


def set_declaration(family, name):
    """The nft command that declares hotport's map ``dnat-BRIDGE`` or set ``forward-BRIDGE``."""
    address = "ipv4_addr" if family == 4 else "ipv6_addr"
    if name.startswith(DNAT_MAP):
        return "add map %s %s %s { type inet_proto . inet_service : %s . inet_service; }" % (
            FAMILIES[family], TABLE, name, address)
    return "add set %s %s %s { type %s . inet_proto . inet_service . inet_service; }" % (
        FAMILIES[family], TABLE, name, address)


def structure(family):
    """The rules of hotport's table that no mapping owns: the jumps from its nat base chains into
    nat-mappings, for packets to the host's own addresses (the output one not for loopback, as
    Docker's: local_access adds its own); and, first in filter-forward, the way out for packets of
    flows already under way: Docker accepts those itself, and without it every packet of every
    flow through the host would walk one mark rule per mapping (throughput fell to 1/20 at
    10 000 mappings, docs/BENCHMARKS.md)."""
    v = FAMILIES[family]
    return [NftRule(family, "nat-prerouting", "fib daddr type local jump nat-mappings", STRUCTURE),
            NftRule(family, "nat-output", "%s daddr != %s fib daddr type local jump nat-mappings"
                    % (v, LOOPBACK[family]), STRUCTURE),
            NftRule(family, "filter-forward", "ct state established,related return", STRUCTURE)]


@dataclass(frozen=True)
class AcceptMark:
    """Docker's bridge-accept-fwmark: packets with (mark & mask) == value are accepted."""

    value: int
    mask: int

    def setter(self):
        """The nft expression that gives a packet this mark, keeping its other bits."""
        if self.mask == 0xffffffff:
            return "0x%08x" % self.value
        if self.mask == self.value:
            return "meta mark | 0x%08x" % self.value
        return "meta mark & 0x%08x | 0x%08x" % (~self.mask & 0xffffffff, self.value)

    def describe(self):
        return "0x%x/0x%x" % (self.value, self.mask)


def accept_mark(rules):
    """Docker's "ALLOW FW MARK" rule -> AcceptMark, or None without the option."""
    for rule in rules:
        if rule.comment != ACCEPT_MARK_COMMENT:
            continue
        masked = re.search(r"meta mark & (0x[0-9a-f]+) == (0x[0-9a-f]+)", rule.expr)
        if masked:
            return AcceptMark(int(masked.group(2), 16), int(masked.group(1), 16))
        plain = re.search(r"meta mark (0x[0-9a-f]+)", rule.expr)
        if plain:
            return AcceptMark(int(plain.group(1), 16), 0xffffffff)
    return None


def parse_ruleset(text):
    """``nft -a list ruleset`` -> {(family, table): {chain or set name: [NftRule or NftElement]}}
    for hotport's and Docker's tables (the elements of hotport's sets and maps; Docker's skipped)."""
    names = dict((name, family) for family, name in FAMILIES.items())
    found, table, chain, is_set, depth, elements = {}, None, None, False, 0, None
    for raw in text.splitlines():
        line = raw.strip()
        opens, closes = line.count("{"), line.count("}")
        if depth == 0 and line.startswith("table "):
            words = line.split()
            family = names.get(words[1])
            table = (family, words[2]) if family and words[2] in (TABLE, DOCKER_TABLE) else None
            if table:
                found[table] = {}
        elif depth == 1 and table and (line.startswith("chain ") or (
                table[1] == TABLE and line.startswith(("set ", "map ")))):
            chain, is_set = line.split()[1], not line.startswith("chain ")
            found[table][chain] = []
        elif depth == 2 and chain and is_set and line.startswith("elements = {"):
            elements = line
        elif elements is not None:
            elements += " " + line
        elif depth == 2 and chain and not is_set and line and opens == closes and not line.startswith(("type ", "policy ")):
            handle = HANDLE.search(line)
            statement = HANDLE.sub("", line)
            comment = COMMENT.search(statement)
            expr = COMMENT.sub("", statement)
            found[table][chain].append(NftRule(
                table[0], chain, expr, _unquote(comment.group(1)) if comment else "", table[1],
                int(handle.group(1)) if handle else 0))
        depth += opens - closes
        if elements is not None and depth == 2:
            found[table][chain] += [NftElement(table[0], chain, expr, comment, table[1])
                                    for expr, comment in _elements(elements)]
            elements = None
        if depth <= 1:
            chain = None
        if depth == 0:
            table = None
    return found


ELEMENT_TEXT = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+')  # one element: up to a comma outside quotes
ELEMENT = re.compile(r'(.*?)(?: comment "((?:[^"\\]|\\.)*)")?(?: : (.*))?$')


def _elements(text):
    """'elements = { KEY comment "C" : VALUE, ... }' -> [(expr, comment)], expr 'KEY[ : VALUE]'."""
    found = []
    for part in ELEMENT_TEXT.findall(text.partition("{")[2].rpartition("}")[0]):
        key, comment, value = ELEMENT.match(part.strip()).groups()
        if key:
            found.append((key + (" : " + value if value else ""), _unquote(comment or "")))
    return found


def _unquote(text):
    return text.replace('\\"', '"')


class NftablesSnapshot(Snapshot):
    """What one read found: hotport's and Docker's rules per family, and Docker's accept mark."""

    def __init__(self, tables, mark):
        self.tables = tables  # {(family, table name): {chain: [NftRule]}}
        self.mark = mark
        self._index = {}

    def rules(self, family, table=TABLE):
        return [rule for rules in self.tables.get((family, table), {}).values() for rule in rules]

    def index(self, family):
        """{identity: [live rules]} of hotport's table of ``family``, built once."""
        if family not in self._index:
            index = {}
            for rule in self.rules(family):
                index.setdefault(rule.same_as, []).append(rule)
            self._index[family] = index
        return self._index[family]

    def families(self):
        return set(family for family, table in self.tables if table == DOCKER_TABLE)

    def claims(self, family):
        claims = []
        docker = self.tables.get((family, DOCKER_TABLE), {}).get("nat-prerouting-and-output", [])
        ours = [rule for name, rules in sorted(self.tables.get((family, TABLE), {}).items())
                if name == "nat-mappings" or name.startswith(DNAT_MAP) for rule in rules]
        seen = set()
        for rule in docker + ours:
            translation = _translation(rule)
            if rule.owner_tag in seen or translation is None:
                continue
            if rule.owner_tag:
                seen.add(rule.owner_tag)
            protocol, first, last, ip, port = translation
            claims.append(Claim(rule, family, protocol, _host_ip(rule), first, last, rule.owner_tag, ip, port))
        return claims

    def owned(self, family):
        return [rule for rule in self.rules(family) if rule.owner_tag]

    def present(self, family):
        return set(self.index(family))

    def copies(self, family, rule):
        return self.index(family).get(rule.same_as, [])

    def misplaced(self, family, rule):
        """A structure rule rendered differently now (its digest): no foreign rule stands in the way
        in hotport's own chains."""
        return is_structure(rule.comment) and any(copy.comment != rule.comment
                                                  for copy in self.copies(family, rule))


class NftablesPublisher(KernelPublisher):
    """Publishes in hotport's own nft tables, marking the flows for Docker's accept rule."""

    name = "nftables"

    def read(self, mappings=None, short_id=None):
        if not self.runner.which("nft"):
            raise NetfilterError("nft not found on this host; install the nftables package (Docker's "
                                 "nftables firewall backend needs it too).")
        rc, out, err = self.runner.run(["nft", "-a", "list", "ruleset"])
        if rc != 0:
            raise NetfilterError("nft -a list ruleset failed (rc=%d): %s" % (rc, err.strip()))
        tables = parse_ruleset(out)
        if (4, DOCKER_TABLE) not in tables:
            raise LayoutError(
                "Docker's nftables table ip docker-bridges was not found, although the engine reports "
                "its nftables firewall backend (%r). Is dockerd running? Restart it and retry."
                % self.engine.firewall_backend)
        mark = accept_mark([rule for rules in tables[(4, DOCKER_TABLE)].values() for rule in rules])
        if mark is None:
            raise LayoutError(NO_MARK % self.engine.firewall_backend)
        return NftablesSnapshot(tables, mark)

    def ipv6_refusal(self, specs):
        return ("IPv6 mapping(s) %s need Docker's IPv6 rules, and this engine writes none (there is no "
                "table ip6 docker-bridges). Turn them on in /etc/docker/daemon.json with \"ip6tables\": "
                "true and restart dockerd, or map IPv4 only." % ", ".join(specs))

    def render(self, snapshot, mapping, endpoint):
        return render(mapping, endpoint, snapshot.mark)

    def mappings_of(self, rules):
        return live_mappings(rules)

    def translated(self, added):
        found = set()
        for rule in added:
            translation = _translation(rule) if rule.owner_tag else None
            if translation and rule.chain != "nat-output":
                found.add((rule.family, translation[0], translation[1]))
        return found

    def prepare(self, snapshot, endpoint, added):
        """route_localnet before the first loopback DNAT lands."""
        if any(rule.chain == "nat-output" and rule.owner_tag for rule in added):
            self.route_loopback(endpoint.bridge)

    def apply(self, snapshot, plans):
        batch = batch_text(plans)
        if not batch:
            return
        rc, out, err = self.runner.run(["nft", "-f", "-"], data=batch)
        if rc != 0:
            raise NetfilterError("nft -f failed (rc=%d): %s; nothing was changed (nft applies a batch "
                                 "whole or not at all)." % (rc, (err or out).strip()))

    def facts(self, snapshot):
        return dict(publisher=self.name, table="%s %s" % (FAMILIES[4], TABLE), accept_mark=snapshot.mark.describe(),
                    ipv6=6 in snapshot.families(), layout="nftables")


def batch_text(plans):
    """One nft batch for {family: Plan}: hotport's tables, chains, and the sets and maps that added
    rules and elements use (``add`` is a no-op for what exists), the deletions (rules by handle,
    elements by key), then the additions (the structure rules at the top of their chains, where a
    table of an older hotport lacks one)."""
    lines = []
    for family, plan in sorted(plans.items()):
        if plan.add:
            v = FAMILIES[family]
            lines.append("add table %s %s" % (v, TABLE))
            for chain, definition in CHAINS:
                lines.append("add chain %s %s %s%s" % (v, TABLE, chain, " { %s }" % definition if definition else ""))
            sets = set(rule.chain for rule in plan.add if isinstance(rule, NftElement))
            sets.update(name for rule in plan.add for name in SET_REFERENCE.findall(rule.expr))
            lines += [set_declaration(family, name) for name in sorted(sets)]
    for family, plan in sorted(plans.items()):
        lines += [rule.delete_command() for rule in plan.delete]
    for family, plan in sorted(plans.items()):
        lines += [rule.text() for rule in plan.add]
    return "".join(line + "\n" for line in lines)


def render(mapping, endpoint, mark):
    """PortMapping + Endpoint -> hotport's nft rules for it (and the structure its table needs).

    A plain mapping is two elements, of its bridge's DNAT map and of its set of flows to mark
    (render_plain). With allowed_sources, one DNAT rule per source, and a filter-input drop for
    everyone else (not translated, they would reach the host). With local_access, the DNAT also
    serves containers (no ``iifname != BRIDGE``), plus the loopback DNAT (IPv4) and the masquerades
    those paths need.
    """
    family, protocol, bridge = mapping.family, mapping.protocol, endpoint.bridge
    v, ip = FAMILIES[family], endpoint.address(family)
    tag = owner_tag(endpoint.container_id, protocol, mapping.host_port)
    if not (mapping.listen_ip or mapping.allowed_sources or mapping.local_access) and MAP_NAME.match(bridge):
        return structure(family) + render_plain(mapping, endpoint, mark, tag)
    to = ("[%s]:%d" if family == 6 else "%s:%d") % (ip, mapping.container_port)
    host_ip = "%s daddr %s " % (v, mapping.listen_ip) if mapping.listen_ip else ""
    host_port = "%s dport %d" % (protocol, mapping.host_port)
    container_port = "%s dport %d" % (protocol, mapping.container_port)
    local = mapping.local_access
    from_outside = "" if local else "iifname != \"%s\" " % bridge
    rules = []
    for source in mapping.allowed_sources or [None]:
        source_match = "%s saddr %s " % (v, source) if source else ""
        rules.append(tagged(family, "nat-mappings", "%s%s%s%s dnat to %s" % (
            host_ip, source_match, from_outside, host_port, to), tag))
    rules.append(tagged(family, "filter-forward", "%s daddr %s oifname \"%s\" %s ct status dnat meta mark set %s" % (
        v, ip, bridge, container_port, mark.setter()), tag))
    if mapping.allowed_sources:
        rules.append(tagged(family, "filter-input", "%s%s drop" % (host_ip, host_port), tag))
    if local:
        rules.append(tagged(family, "nat-postrouting", "%s saddr %s %s daddr %s %s masquerade" % (
            v, ip, v, ip, container_port), tag))
        if family == 4:
            loopback = mapping.listen_ip if mapping.loopback_only else LOOPBACK[4]
            rules.append(tagged(family, "nat-output", "ip daddr %s %s dnat to %s" % (loopback, host_port, to), tag))
            rules.append(tagged(family, "nat-postrouting", "ip saddr %s ip daddr %s oifname \"%s\" %s masquerade" % (
                LOOPBACK[4], ip, bridge, container_port), tag))
    return structure(family) + rules


def render_plain(mapping, endpoint, mark, tag):
    """A plain mapping: its elements of ``dnat-BRIDGE`` (protocol . host port : address . port) and
    ``forward-BRIDGE`` (address . protocol . port . host port: the original port tells its flows
    from Docker's), and the bridge's rules that look them up, one DNAT and one mark rule per protocol
    (nft types ``ct original proto-dst`` only once the protocol is known)."""
    family, protocol, bridge = mapping.family, mapping.protocol, endpoint.bridge
    v, ip = FAMILIES[family], endpoint.address(family)
    dnat, forward = DNAT_MAP + bridge, FORWARD_SET + bridge
    return [
        bridge_structure(family, "nat-mappings", "iifname != \"%s\" dnat %s to meta l4proto . th dport map @%s"
                         % (bridge, v, dnat), bridge),
        bridge_structure(family, "filter-forward", "oifname \"%s\" ct status dnat meta l4proto %s %s daddr . "
                         "meta l4proto . th dport . ct original proto-dst @%s meta mark set %s"
                         % (bridge, protocol, v, forward, mark.setter()), "%s/%s" % (bridge, protocol)),
        tagged(family, dnat, "%s . %d : %s . %d" % (protocol, mapping.host_port, ip, mapping.container_port),
               tag, NftElement),
        tagged(family, forward, "%s . %s . %d . %d" % (ip, protocol, mapping.container_port, mapping.host_port),
               tag, NftElement)]


def _translation(rule):
    """A DNAT rule or DNAT map element -> (protocol, first host port, last, container IP, its first
    port or None), else None."""
    if isinstance(rule, NftElement):
        if not rule.chain.startswith(DNAT_MAP):
            return None
        protocol, dummy, port, dummy, ip, dummy, container_port = rule.expr.split(" ")
        return protocol, int(port), int(port), ip, int(container_port)
    ports = PORTS.search(rule.expr)
    if "dnat to" not in rule.expr or not ports:
        return None
    first = int(ports.group(2))
    return (ports.group(1), first, int(ports.group(3) or first)) + _destination(rule)


def _destination(rule):
    """'172.17.0.2:80' or '[fd00::2]:80' after 'dnat to' -> (ip, port or None)."""
    target = rule.value("dnat to") or ""
    ip, dummy, port = target.rpartition(":")
    port = port.partition("-")[0]
    return ip.strip("[]"), int(port) if port.isdigit() else None


def _host_ip(rule):
    return rule.value("ip daddr") or rule.value("ip6 daddr") or ""


def live_mappings(rules):
    """hotport's rules -> {(family, owner tag): PortMapping}, options read back: the sources of the
    DNATs, local access from a DNAT that also serves the bridge or a loopback DNAT."""
    found, sources, local = {}, {}, set()
    for rule in rules:
        tag = parse_owner_tag(rule.owner_tag)
        translation = _translation(rule)
        if tag is None or translation is None:
            continue
        key = (rule.family, rule.owner_tag)
        if isinstance(rule, NftElement):
            found[key] = (tag[1], tag[2], translation[4], "::" if rule.family == 6 else "")
            continue
        if rule.chain == "nat-output" or "iifname != " not in rule.expr:
            local.add(key)
        if rule.chain != "nat-mappings":
            continue
        host_ip = _host_ip(rule) or ("::" if rule.family == 6 else "")
        found[key] = (tag[1], tag[2], translation[4], host_ip)
        source = rule.value("ip saddr") or rule.value("ip6 saddr")
        if source:
            sources.setdefault(key, set()).add(source)
    return dict((key, PortMapping(*fields, allowed_sources=ordered_sources(sources.get(key, ())),
                                  local_access=key in local))
                for key, fields in found.items())
