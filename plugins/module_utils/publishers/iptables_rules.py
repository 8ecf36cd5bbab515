# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iptables rules as hotport models them (pure): a rule, a table of iptables-save output, a
plan of deletions and additions and its iptables-restore text, and the live state one read found
(IptablesSnapshot). Nothing here runs a command; iptables_render.py renders and reads back,
iptables.py reads and writes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.hotport.docker.plugins.module_utils.ownership import parse_owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.publishers import base
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import KernelSnapshot


@dataclass(frozen=True)
class Rule:
    """One rule as iptables-save prints it: ``-A CHAIN ARGS`` in TABLE, of ``family`` 4
    (iptables) or 6 (ip6tables).

    ``position`` 0 appends; N inserts at N (Docker 28 inserts its ACCEPTs at 1, ahead of
    the per-bridge DROP).
    """

    table: str
    chain: str
    args: tuple
    position: int = 0
    family: int = 4
    # Asked for again and again while planning over thousands of rules: found once, at creation.
    owner_tag: str = field(init=False, repr=False, compare=False)
    # Identity for diffing: placement does not change what a rule is.
    same_as: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        comment = self.comment
        object.__setattr__(self, "owner_tag", comment if comment and _rendered_for(self, comment) else None)
        object.__setattr__(self, "same_as", (self.family, self.table, self.chain, self.args))

    @property
    def comment(self):
        return self.value("--comment")

    def line(self, verb="-A"):
        head = [verb, self.chain]
        if verb == "-I":
            head.append(str(self.position))
        return " ".join(head + [_quote(arg) for arg in self.args])

    def text(self):
        """iptables-save form, prefixed with the table (and -6 for ip6tables, as iptables
        itself marks an IPv6-only rule): what diff mode shows."""
        return "%s-t %s %s" % ("-6 " if self.family == 6 else "", self.table, self.line())

    def value(self, name):
        """The argument after option ``name`` ('--dport', '-d', '-j', ...) or None."""
        for index in range(len(self.args) - 1):
            if self.args[index] == name and (index == 0 or self.args[index - 1] != "!"):
                return self.args[index + 1]
        return None


# Every rule Layout.render (iptables_render.py) writes, by (table, chain, target): whether its
# --dport is the tag's host port. A rule whose tag looks like ours but whose content hotport never
# renders for that tag is someone else's, and is never deleted.
RENDERED = {("nat", "DOCKER", "DNAT"): True, ("filter", "DOCKER", "ACCEPT"): False,
            ("nat", "POSTROUTING", "MASQUERADE"): False, ("mangle", "POSTROUTING", "CHECKSUM"): False,
            ("filter", "INPUT", "DROP"): True, ("nat", "OUTPUT", "DNAT"): True, ("raw", "PREROUTING", "DROP"): True}


def _rendered_for(rule, comment):
    """Whether ``rule`` is one hotport renders for the mapping its comment names."""
    tag = parse_owner_tag(comment)
    dport_is_host_port = RENDERED.get((rule.table, rule.chain, rule.value("-j")))
    if tag is None or dport_is_host_port is None or rule.value("-p") != tag[1]:
        return False
    return not dport_is_host_port or rule.value("--dport") == str(tag[2])


NEEDS_QUOTES = re.compile(r"[\s\"'\\]")
SAVE_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s"]+)')


def _quote(arg):
    """Quote as iptables-save does: iptables-restore understands double quotes only."""
    if arg and not NEEDS_QUOTES.search(arg):
        return arg
    return '"%s"' % arg.replace("\\", "\\\\").replace('"', '\\"')


@dataclass
class Table:
    """One table of an iptables-save dump: chains in order, rules per chain in order."""

    name: str
    chains: dict = field(default_factory=dict)

    def rules(self, chain):
        return self.chains.get(chain, [])


def save_words(line):
    """Words of an iptables-save line: bare, or double-quoted with backslash escapes (what
    iptables-save writes; a regex, because shlex costs 0.4 s per 3000 rules)."""
    return [re.sub(r"\\(.)", r"\1", match.group(1)) if match.group(1) is not None else match.group(2)
            for match in SAVE_WORD.finditer(line)]


def parse_save(text, family=4):
    """iptables-save (or ip6tables-save) output -> {table name: Table}."""
    tables = {}
    table = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = tables.setdefault(line[1:], Table(line[1:]))
        elif line == "COMMIT":
            table = None
        elif table is None:
            continue
        elif line.startswith(":"):
            table.chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            words = save_words(line)
            table.chains.setdefault(words[1], []).append(Rule(table.name, words[1], tuple(words[2:]), family=family))
    return tables


def parse_table(text, name, family=4):
    """One table out of iptables-save output (empty when absent)."""
    return parse_save(text, family).get(name, Table(name))


def strip_save_comments(text):
    """iptables-save output without its '# Generated/Completed' lines: comparable byte for byte."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


class Plan(base.Plan):
    """Rules to delete and to add, per table, in the order they must be applied."""

    def tables(self):
        names = []
        for rule in self.delete + self.add:
            if rule.table not in names:
                names.append(rule.table)
        return names

    def restore_text(self):
        """The iptables-restore --noflush input: deletions first, then additions, per table."""
        chunks = []
        for table in self.tables():
            chunks.append("*%s" % table)
            chunks.extend(rule.line("-D") for rule in self.delete if rule.table == table)
            chunks.extend(rule.line("-I" if rule.position else "-A")
                          for rule in self.add if rule.table == table)
            chunks.append("COMMIT")
        return "\n".join(chunks) + "\n"


def placement(tables):
    """Where every rule stands: ({identity: [positions in its chain]}, {(table, chain): position of
    its first foreign DROP})."""
    positions, first_drop = {}, {}
    for table in tables.values():
        for chain, rules in table.chains.items():
            for index, rule in enumerate(rules, start=1):
                positions.setdefault(rule.same_as, []).append(index)
                if not rule.owner_tag and rule.value("-j") == "DROP":
                    first_drop.setdefault((table.name, chain), index)
    return positions, first_drop


def owned_rules(tables):
    """Every hotport-tagged rule in the given tables, in ruleset order."""
    return [rule for table in tables.values() for chain in table.chains.values()
            for rule in chain if rule.owner_tag]


def undo_plan(before, after):
    """What brings our tagged rules of ``after`` back to ``before``, at their old positions.

    iptables-restore commits table by table, so a failure in a later table leaves the
    earlier ones applied; this plan undoes them.
    """
    undo = Plan()
    for name, table in after.items():
        old = before.get(name, Table(name))
        for chain, rules in table.chains.items():
            was = set(rule.same_as for rule in old.rules(chain))
            undo.delete.extend(rule for rule in rules if rule.owner_tag and rule.same_as not in was)
        for chain, old_rules in old.chains.items():
            now = set(rule.same_as for rule in table.rules(chain))
            for position, rule in enumerate(old_rules, start=1):
                if rule.owner_tag and rule.same_as not in now:
                    undo.add.append(Rule(rule.table, rule.chain, rule.args, position, rule.family))
    return undo


class IptablesSnapshot(KernelSnapshot):
    """What one read found: per family the Iptables and its parsed tables, and the layout; what the
    planner asks of a family is worked out once, here."""

    def __init__(self, rulesets, layout):
        self.rulesets = rulesets  # {family: (Iptables, {table name: Table})}
        super().__init__(layout, dict((family, owned_rules(tables)) for family, (dummy, tables) in rulesets.items()),
                         dict((family, layout.claims(tables["nat"], family))
                              for family, (dummy, tables) in rulesets.items()))
        self._positions, self._first_drop = {}, {}
        for family, (dummy, tables) in rulesets.items():
            self._positions[family], self._first_drop[family] = placement(tables)

    def present(self, family):
        return set(self._positions[family])

    def copies(self, family, rule):
        # iptables -D deletes the first rule equal to the spec: the rule itself is the key.
        return [rule] * len(self._positions[family].get(rule.same_as, []))

    def misplaced(self, family, rule):
        # A copy behind Docker's DROP (Docker 28+ inserts its ACCEPTs ahead of it) never matches.
        drop = self._first_drop[family].get((rule.table, rule.chain))
        return bool(rule.position) and drop is not None and any(
            at > drop for at in self._positions[family].get(rule.same_as, []))
