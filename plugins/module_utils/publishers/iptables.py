# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iptables publisher's I/O: find the iptables variant that holds Docker's chains, read its
tables, apply a plan in one iptables-restore --noflush and roll back what a failure left.

Everything runs through a runner (runners.py), so the same code drives the host from the module
and a throwaway network namespace from the tests.
"""

from __future__ import annotations

from ansible_collections.hotport.docker.plugins.module_utils.ownership import TAG_PREFIX
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import NetfilterError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import (
    Plan, Table, parse_save, parse_table, undo_plan)

# Docker's own binaries: iptables-nft and iptables-legacy keep separate rulesets, and
# Docker's chains live in exactly one of them. Plain "iptables" covers hosts (RHEL) that
# ship a single variant without the suffixed names.
VARIANTS = ("nft", "legacy", "")
# How long iptables-restore waits for the xtables lock (iptables-legacy and anything else
# holding it): bounded, so that a stuck holder gives a clear error instead of a hung run.
XTABLES_WAIT = 10


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
    undo = undo_plan(dict((name, before[name]) for name in plan.tables()), after)
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
