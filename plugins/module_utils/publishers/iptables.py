# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iptables publisher: rules in Docker's own iptables chains, as Docker writes them for -p.

Its I/O lives here: find the iptables variant that holds Docker's chains, read its tables,
apply a plan in one iptables-restore --noflush per family and roll back what a failure left.
The rules are rendered and read back in iptables_render.py, modelled in iptables_rules.py.

Everything runs through a runner (runners.py), so the same code drives the host from the module
and a throwaway network namespace from the tests.
"""

from __future__ import annotations

from ansible_collections.hotport.docker.plugins.module_utils.ownership import TAG_PREFIX, owner_id, parse_owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import KernelPublisher, NetfilterError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_render import detect_layout, is_loopback_dnat
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import (
    IptablesSnapshot, Plan, Table, owned_rules, parse_save, parse_table, undo_plan)

# Docker's own binaries: iptables-nft and iptables-legacy keep separate rulesets, and
# Docker's chains live in exactly one of them. Plain "iptables" covers hosts (RHEL) that
# ship a single variant without the suffixed names.
VARIANTS = ("nft", "legacy", "")
# How long iptables-restore waits for the xtables lock (iptables-legacy and anything else
# holding it): bounded, so that a stuck holder gives a clear error instead of a hung run.
XTABLES_WAIT = 10
IPV6_OFF = ("IPv6 mapping(s) %s need Docker's ip6tables rules, and this engine writes none (its "
            "ip6tables nat DOCKER chain is missing). Turn them on in /etc/docker/daemon.json with "
            "\"ip6tables\": true (Docker 20.10 to 26 also need \"experimental\": true; on by default "
            "from 27) and restart dockerd, or map IPv4 only.")


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

    def save(self, table=None):
        """iptables-save of one table, or of every table the kernel has (None)."""
        argv = [self.binary("save")] + (["-t", table] if table else [])
        rc, out, err = self.runner.run(argv)
        if rc != 0:
            raise NetfilterError("%s failed (rc=%d): %s" % (" ".join(argv), rc, err.strip()))
        return out

    def read(self, tables):
        """Read each table once -> {name: Table}. Tables but filter and nat are taken from one save
        of all: naming a table that does not exist yet (-t mangle) makes iptables-legacy create it."""
        found = dict((name, parse_table(self.save(name), name, self.family))
                     for name in tables if name in ("filter", "nat"))
        others = [name for name in tables if name not in found]
        if others:
            everything = parse_save(self.save(), self.family)
            found.update((name, everything.get(name, Table(name))) for name in others)
        return found

    def restore(self, text):
        return self.runner.run([self.binary("restore"), "--noflush", "-w", str(XTABLES_WAIT)], data=text)


def legacy_table_exists(runner, table, family=4):
    """Whether iptables-legacy's ``table`` exists in the kernel (reading it would create it)."""
    rc, out, dummy = runner.run(["cat", "/proc/net/ip6_tables_names" if family == 6 else "/proc/net/ip_tables_names"])
    return rc == 0 and table in out.split()


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
        if variant == "legacy" and not legacy_table_exists(runner, "nat"):
            continue  # naming it (-t nat) would create it
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


class IptablesPublisher(KernelPublisher):
    """Publishes with the rules Docker itself writes for -p, in Docker's chains, tagged."""

    name = "iptables"

    def read(self, mappings=None, short_id=None):
        """Find the iptables variant holding Docker's chains, read nat and the other tables
        planning needs (all of them when ``mappings`` is None), detect the layout. Family 6 is
        there when Docker writes ip6tables rules too (same variant)."""
        if mappings is None:
            def tables_besides_nat(nat):
                return ["filter", "mangle", "raw"]
        else:
            def tables_besides_nat(nat):
                return _tables_besides_nat(nat, mappings, short_id)
        iptables, nat = find_docker_iptables(self.runner)
        tables = iptables.read(tables_besides_nat(nat))
        tables["nat"] = nat
        rulesets = {4: (iptables, tables)}
        ip6tables = iptables.ipv6()
        if self.runner.which(ip6tables.binary("save")):
            # All tables at once: naming one (-t nat) would make iptables-legacy create it.
            rc, out, err = self.runner.run([ip6tables.binary("save")])
            found = parse_save(out, 6)
            nat6 = found.get("nat", Table("nat"))
            if rc == 0 and "DOCKER" in nat6.chains:
                tables6 = dict((name, found.get(name, Table(name))) for name in tables_besides_nat(nat6))
                tables6["nat"] = nat6
                rulesets[6] = (ip6tables, tables6)
        return IptablesSnapshot(rulesets, detect_layout(nat, tables["filter"]))

    def ipv6_refusal(self, specs):
        return IPV6_OFF % ", ".join(specs)

    def translated(self, added):
        return set((rule.family, rule.value("-p"), int(rule.value("--dport"))) for rule in added
                   if rule.table == "nat" and rule.value("-j") == "DNAT")

    def prepare(self, snapshot, endpoint, added):
        """route_localnet before the first loopback DNAT lands (with the proxy off, Docker set it)."""
        if any(rule.chain == "OUTPUT" for rule in added) and snapshot.layout.userland_proxy:
            self.route_loopback(endpoint.bridge)

    def apply(self, snapshot, plans):
        apply_plans([(iptables, Plan(plans[family].delete, plans[family].add), tables)
                     for family, (iptables, tables) in sorted(snapshot.rulesets.items())])

    def facts(self, snapshot):
        facts = dict(publisher=self.name, iptables=snapshot.rulesets[4][0].name, ipv6=6 in snapshot.rulesets)
        facts.update(snapshot.layout.describe())
        return facts


def _tables_besides_nat(nat, mappings, short_id):
    """filter always; mangle where SCTP checksum rules may be written or removed, and for a request
    about a whole container (no mappings). A removed container's SCTP port is only taken over by an
    SCTP mapping, so ours decide."""
    if not mappings:
        return ["filter", "mangle", "raw"]  # every rule of the container, wherever its leftovers are
    tables = ["filter"]
    theirs = [rule for rule in owned_rules({"nat": nat}) if owner_id(rule) == short_id]
    protocols = set(mapping.protocol for mapping in mappings)
    protocols.update(parse_owner_tag(rule.owner_tag)[1] for rule in theirs)
    if "sctp" in protocols:
        tables.append("mangle")
    # Docker 28+'s DROP of remote packets to a loopback mapping (raw PREROUTING).
    if any(mapping.loopback_only for mapping in mappings) or any(is_loopback_dnat(rule) for rule in theirs):
        tables.append("raw")
    return tables
