# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nft rules as hotport models them (pure): hotport's tables, chains, maps and sets, each name built
and recognised here, a rule, an element, what a DNAT translates, Docker's accept mark, and the live
state one read found (NftablesSnapshot). Nothing here runs a command; nftables_render.py renders
and reads back, nftables.py reads and writes.

Every rule and element of a mapping carries its tag and a digest of what was rendered (``comment
"hotport:ID:tcp/8080 DIGEST"``): it is identified by that comment. The rules no mapping owns (the
table's structure) carry ``hotport-table``, per bridge ``hotport-table BRIDGE[/PROTO] DIGEST``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from ansible_collections.hotport.docker.plugins.module_utils.ownership import TAG_PREFIX
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import Claim, KernelSnapshot

TABLE = "hotport"
DOCKER_TABLE = "docker-bridges"
# Docker's chain of its published ports' DNATs, in DOCKER_TABLE.
DOCKER_DNAT_CHAIN = "nat-prerouting-and-output"
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
    ("raw-prerouting", "type filter hook prerouting priority -300; policy accept;"),
)
STRUCTURE = "hotport-table"
ACCEPT_MARK_COMMENT = "ALLOW FW MARK"

# A bridge's map of plain mappings' DNATs and its set of their flows to mark: a prefix + the bridge's
# name, or, for a name nft could not take, another prefix + a hash of it (as kube-proxy's
# hashAndTruncate): every bridge gets its map, and the two kinds of names never meet.
DNAT_MAP, FORWARD_SET = "dnat-", "forward-"
HASHED = {DNAT_MAP: "dnath-", FORWARD_SET: "forwardh-"}
NFT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,250}\Z")


def bridge_set_name(prefix, bridge):
    """The name of ``bridge``'s DNAT map (``prefix`` DNAT_MAP) or set of flows to mark (FORWARD_SET)."""
    name = prefix + bridge
    if NFT_NAME.match(name):
        return name
    return HASHED[prefix] + hashlib.sha256(bridge.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def is_dnat_map(name):
    return name.startswith((DNAT_MAP, HASHED[DNAT_MAP]))


def is_forward_set(name):
    return name.startswith((FORWARD_SET, HASHED[FORWARD_SET]))


def set_declaration(family, name):
    """The nft command that declares hotport's DNAT map or set of flows to mark ``name``."""
    address = "ipv4_addr" if family == 4 else "ipv6_addr"
    if is_dnat_map(name):
        return "add map %s %s %s { type inet_proto . inet_service : %s . inet_service; }" % (
            FAMILIES[family], TABLE, name, address)
    return "add set %s %s %s { type %s . inet_proto . inet_service . inet_service; }" % (
        FAMILIES[family], TABLE, name, address)


def is_structure(comment):
    """The table's own rules: ``hotport-table``, or per bridge ``hotport-table BRIDGE[/PROTO] DIGEST``."""
    return comment == STRUCTURE or comment.startswith(STRUCTURE + " ")


@dataclass(frozen=True)
class Translation:
    """What a DNAT rule or DNAT map element translates: host ports ``first``-``last`` of ``protocol``
    (on ``host_ip``, '' for every address; from ``source`` only, when set) to ``container_ip`` and
    its ``container_port`` (None when not one port); ``from_outside``: not for packets from the bridge."""

    protocol: str
    first: int
    last: int
    container_ip: str
    container_port: int = None
    host_ip: str = ""
    source: str = ""
    from_outside: bool = True


@dataclass(frozen=True)
class NftRule:
    """One rule: its statements (``expr``, nft's syntax without the comment) in a chain of a table of
    ``family``; ``handle`` once it is live; ``translation`` when it is a DNAT."""

    family: int
    chain: str
    expr: str
    comment: str = ""
    table: str = TABLE
    handle: int = field(default=0, compare=False)
    translation: Translation = field(default=None, compare=False, repr=False)
    owner_tag: str = field(init=False, repr=False, compare=False)
    # Identity for diffing, found once at creation: hotport's rules by their comment (a mapping's by tag
    # and digest, the structure's by its name: a changed digest there is a rule to rewrite, see
    # misplaced), others by text.
    same_as: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        tag = self.comment.split(" ", 1)[0]
        object.__setattr__(self, "owner_tag", tag if tag.startswith(TAG_PREFIX) else None)
        if self.comment.startswith(TAG_PREFIX):
            identity = (self.family, self.table, self.chain, self.comment)
        elif is_structure(self.comment):
            identity = (self.family, self.table, self.chain, " ".join(self.comment.split(" ")[:2]))
        else:
            identity = (self.family, self.table, self.chain, self.expr, self.comment)
        object.__setattr__(self, "same_as", identity)

    def statement(self):
        return "%s comment \"%s\"" % (self.expr, self.comment) if self.comment else self.expr

    def text(self):
        """The nft command that adds the rule (what the batch runs and diff mode shows): structure
        rules go to the top of their chain."""
        return "%s rule %s %s %s %s" % ("insert" if self.comment == STRUCTURE else "add", FAMILIES[self.family],
                                        self.table, self.chain, self.statement())

    def delete_command(self):
        return "delete rule %s %s %s handle %d" % (FAMILIES[self.family], self.table, self.chain, self.handle)


class NftElement(NftRule):
    """One element of a set or map of hotport's table (``chain`` is the set's name): ``expr`` is its
    key, and for a map `` : `` and its value. Elements have no handle: their key names them."""

    @property
    def key(self):
        return self.expr.partition(" : ")[0]

    def text(self):
        key, colon, value = self.expr.partition(" : ")
        return "add element %s %s %s { %s comment \"%s\"%s }" % (
            FAMILIES[self.family], self.table, self.chain, key, self.comment, " : " + value if colon else "")

    def delete_command(self):
        return "delete element %s %s %s { %s }" % (FAMILIES[self.family], self.table, self.chain, self.key)


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


class NftablesSnapshot(KernelSnapshot):
    """What one read found: hotport's and Docker's rules per family, and the layout they are rendered
    and read back with (nftables_render.NftablesLayout, which knows Docker's accept mark)."""

    def __init__(self, tables, layout):
        self.tables = tables  # {(family, table name): {chain or set name: [NftRule or NftElement]}}
        families = sorted(family for family, table in tables if table == DOCKER_TABLE)
        live = dict((family, [rule for rules in tables.get((family, TABLE), {}).values() for rule in rules])
                    for family in families)
        owned = dict((family, [rule for rule in live[family] if rule.owner_tag]) for family in families)
        super().__init__(layout, owned, dict((family, self._claims_of(family)) for family in families))
        self._index = dict((family, {}) for family in families)  # {family: {identity: [live copies]}}
        for family in families:
            for rule in live[family]:
                self._index[family].setdefault(rule.same_as, []).append(rule)

    def _claims_of(self, family):
        """Docker's DNATs, then hotport's (rules of nat-mappings and elements of DNAT maps; a mapping
        written as several rules, one per source, claims its port once)."""
        docker = self.tables.get((family, DOCKER_TABLE), {}).get(DOCKER_DNAT_CHAIN, [])
        ours = [rule for name, rules in sorted(self.tables.get((family, TABLE), {}).items())
                if name == "nat-mappings" or is_dnat_map(name) for rule in rules]
        claims, seen = [], set()
        for rule in docker + ours:
            found = rule.translation
            if found is None or (rule.owner_tag and rule.owner_tag in seen):
                continue
            seen.add(rule.owner_tag)
            claims.append(Claim(rule, family, found.protocol, found.host_ip, found.first, found.last,
                                rule.owner_tag, found.container_ip, found.container_port))
        return claims

    def present(self, family):
        return set(self._index[family])

    def copies(self, family, rule):
        return self._index[family].get(rule.same_as, [])

    def misplaced(self, family, rule):
        """A structure rule rendered differently now (its digest): no foreign rule stands in the way
        in hotport's own chains."""
        return is_structure(rule.comment) and any(copy.comment != rule.comment for copy in self.copies(family, rule))
