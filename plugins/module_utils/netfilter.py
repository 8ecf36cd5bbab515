# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netfilter state: read the live ruleset, apply a plan in one iptables-restore.

Everything that runs an iptables binary goes through a runner (runners.py), so the same code
drives the host from the module and a throwaway network namespace from the tests.
"""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass, field

from ansible_collections.hotport.docker.plugins.module_utils.ownership import TAG_PREFIX

# Docker's own binaries: iptables-nft and iptables-legacy keep separate rulesets, and
# Docker's chains live in exactly one of them. Plain "iptables" covers hosts (RHEL) that
# ship a single variant without the suffixed names.
VARIANTS = ("nft", "legacy", "")
LOCK_PATH = "/run/hotport.lock"
# How long iptables-restore waits for the xtables lock (iptables-legacy and anything else
# holding it): bounded, so that a stuck holder gives a clear error instead of a hung run.
XTABLES_WAIT = 10


class NetfilterError(RuntimeError):
    """iptables could not be read or written; the message says what to check."""


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

    def __post_init__(self):
        comment = self.comment
        object.__setattr__(self, "owner_tag", comment if comment and comment.startswith(TAG_PREFIX) else None)

    @property
    def comment(self):
        return self.value("--comment")

    @property
    def same_as(self):
        """Identity for diffing: placement does not change what a rule is."""
        return (self.family, self.table, self.chain, self.args)

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


def _save_words(line):
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
            words = _save_words(line)
            table.chains.setdefault(words[1], []).append(Rule(table.name, words[1], tuple(words[2:]), family=family))
    return tables


def parse_table(text, name, family=4):
    """One table out of iptables-save output (empty when absent)."""
    return parse_save(text, family).get(name, Table(name))


def strip_save_comments(text):
    """iptables-save output without its '# Generated/Completed' lines: comparable byte for byte."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


class Iptables:
    """One iptables variant (nft, legacy or the unsuffixed default) of one address family
    (4: iptables, 6: ip6tables) reached through a runner."""

    def __init__(self, runner, variant, family=4):
        self.runner = runner
        self.variant = variant
        self.family = family

    def binary(self, tool):
        return "%s-%s" % (self.name, tool)

    @property
    def name(self):
        command = "ip6tables" if self.family == 6 else "iptables"
        return "%s-%s" % (command, self.variant) if self.variant else command

    def ipv6(self):
        """The ip6tables of the same variant: Docker writes both families with one."""
        return Iptables(self.runner, self.variant, 6)

    def save(self, table):
        rc, out, err = self.runner.run([self.binary("save"), "-t", table])
        if rc != 0:
            raise NetfilterError("%s -t %s failed (rc=%d): %s" % (self.binary("save"), table, rc, err.strip()))
        return out

    def read(self, tables):
        """Read each table once -> {name: Table}."""
        return dict((name, parse_table(self.save(name), name, self.family)) for name in tables)

    def restore(self, text):
        return self.runner.run([self.binary("restore"), "--noflush", "-w", str(XTABLES_WAIT)], data=text)


def find_docker_iptables(runner):
    """(Iptables, nat Table) of the variant whose nat table holds Docker's DOCKER chain.

    Rules written in one variant are invisible to the other, so writing to the wrong one
    silently does nothing: this is detected, never assumed.
    """
    tried = []
    for variant in VARIANTS:
        iptables = Iptables(runner, variant)
        if not runner.which(iptables.binary("save")):
            continue
        tried.append(iptables.name)
        rc, out, err = runner.run([iptables.binary("save"), "-t", "nat"])
        nat = parse_table(out, "nat")
        if rc == 0 and "DOCKER" in nat.chains:
            return iptables, nat
    if not tried:
        raise NetfilterError(
            "no iptables-save found on this host; install the iptables package "
            "(it provides iptables-nft and iptables-legacy).")
    raise NetfilterError(
        "Docker's nat DOCKER chain was not found with %s. Is dockerd running with its "
        "iptables integration on (the default, --iptables=true)?" % " or ".join(tried))


@dataclass
class Plan:
    """Rules to delete and to add, per table, in the order they must be applied."""

    delete: list = field(default_factory=list)
    add: list = field(default_factory=list)

    def __bool__(self):
        return bool(self.delete or self.add)

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


def owned_rules(tables):
    """Every hotport-tagged rule in the given tables, in ruleset order."""
    return [rule for table in tables.values() for chain in table.chains.values()
            for rule in chain if rule.owner_tag]


def _undo_plan(before, after):
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


def apply_plan(iptables, plan, before):
    """Apply ``plan`` in one iptables-restore --noflush; on failure leave ``before`` in place.

    ``before`` is the parsed state the plan was made from (tables it touches). Raises
    NetfilterError saying whether a partial commit had to be rolled back.
    """
    if not plan:
        return
    rc, out, err = iptables.restore(plan.restore_text())
    if rc == 0:
        return
    raise NetfilterError("%s --noflush failed (rc=%d): %s; %s."
                         % (iptables.binary("restore"), rc, (err or out).strip(),
                            roll_back(iptables, plan, before)))


def roll_back(iptables, plan, before):
    """Bring the tables ``plan`` touched back to ``before`` (our tagged rules only) -> what
    was done, for the error message."""
    after = iptables.read(plan.tables())
    undo = _undo_plan(dict((name, before[name]) for name in plan.tables()), after)
    if not undo:
        return "nothing was changed"
    rc, out, err = iptables.restore(undo.restore_text())
    if rc == 0:
        return "a partial commit was rolled back"
    return "ROLLBACK FAILED (%s); check %s-save for rules tagged %s" % (err.strip(), iptables.name, TAG_PREFIX)


def apply_plans(steps):
    """Apply (Iptables, Plan, before) steps in order (IPv4, then IPv6): a failing step is
    rolled back, and so is every step before it, so that a run changes both families or
    neither."""
    done = []
    for iptables, plan, before in steps:
        try:
            apply_plan(iptables, plan, before)
        except NetfilterError as exc:
            undone = ["%s: %s" % (step[0].name, roll_back(*step)) for step in done if step[1]]
            if undone:
                raise NetfilterError("%s Earlier changes of this run: %s." % (exc, "; ".join(undone)))
            raise
        done.append((iptables, plan, before))


class HostLock:
    """Serialise hotport runs on one host: read, plan and apply must not interleave."""

    def __init__(self, path=LOCK_PATH):
        self.path = path
        self.handle = None

    def __enter__(self):
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory)
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
