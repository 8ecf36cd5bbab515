# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired mappings of one container -> applied netfilter state.

The one entry point that the module (and any re-applying service) calls:
read the live ruleset once, detect the layout, render, plan, apply in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.hotport.docker.plugins.module_utils.host import (
    allow_loopback_routing, clashing_listeners, listeners, local_addresses)
from ansible_collections.hotport.docker.plugins.module_utils.layouts import (
    detect_layout, host_port_claims, live_mappings, owner_tag, parse_owner_tag)
from ansible_collections.hotport.docker.plugins.module_utils.netfilter import (
    HostLock, LOCK_PATH, NetfilterError, Plan, apply_plan, find_docker_iptables, owned_rules)

ATTEMPTS = 3


class ConflictError(RuntimeError):
    """A requested host port belongs to someone else; nothing was changed."""


@dataclass
class Outcome:
    changed: bool
    engine: dict
    added: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    mappings: list = field(default_factory=list)
    before: list = field(default_factory=list)  # Rules (rendered as text only for diff mode)
    after: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def _tag_of(rule):
    return parse_owner_tag(rule.owner_tag)


def _owner_id(rule):
    tag = _tag_of(rule)
    return tag[0] if tag else None


def _conflicts(nat, mappings, short_id, container_exists):
    """Claims of other owners on the requested host ports -> (errors, stale tags to take over)."""
    errors, stale = [], set()
    claims = {}  # (protocol, host port) -> claims: one look-up per mapping, not a scan
    for rule, protocol, host_ip, first, last in host_port_claims(nat):
        for port in range(first, last + 1):
            claims.setdefault((protocol, port), []).append((rule, host_ip))
    for mapping in mappings:
        for rule, host_ip in claims.get(mapping.key, []):
            if host_ip and mapping.host_ip and host_ip != mapping.host_ip:
                continue
            tag = _tag_of(rule)
            if tag is None:
                errors.append("%s is already published by Docker (nat rule: %s)"
                              % (mapping.spec(), rule.line()))
            elif tag[0] == short_id:
                continue
            elif container_exists(tag[0]):
                errors.append("%s is already mapped by hotport to container %s"
                              % (mapping.spec(), tag[0]))
            else:
                stale.add(rule.owner_tag)
    return errors, stale


def _live_placement(tables):
    """{rule identity: [positions]} and, per chain, where its first foreign DROP stands."""
    positions, first_drop = {}, {}
    for table in tables.values():
        for chain, rules in table.chains.items():
            for index, rule in enumerate(rules, start=1):
                positions.setdefault(rule.same_as, []).append(index)
                if rule.value("-j") == "DROP" and not rule.owner_tag:
                    first_drop.setdefault((table.name, chain), index)
    return positions, first_drop


def plan_changes(tables, layout, endpoint, mappings, state, exclusive, container_exists):
    """Pure planning over parsed tables -> (Plan, desired rules, stale tags taken over).

    Only rules carrying our tag are ever deleted. In scope for removal are this
    container's tagged rules for the requested host ports (all of them with
    ``exclusive``, or with state absent and no ports given).
    """
    short_id = endpoint.container_id[:12]
    desired = []
    stale = set()
    if state == "present":
        errors, stale = _conflicts(tables["nat"], mappings, short_id, container_exists)
        if errors:
            raise ConflictError(
                "; ".join(errors) + ". Nothing was changed: choose a free host port, or remove "
                "the other mapping first.")
        desired = [rule for mapping in mappings for rule in layout.render(mapping, endpoint)]
    keys = set(mapping.key for mapping in mappings)
    whole_container = exclusive or (state == "absent" and not mappings)

    def in_scope(rule):
        tag = _tag_of(rule)
        if tag is None:
            return False
        if rule.owner_tag in stale:
            return True
        return tag[0] == short_id and (whole_container or (tag[1], tag[2]) in keys)

    positions, first_drop = _live_placement(tables)
    wanted = set(rule.same_as for rule in desired)
    plan = Plan()
    plan.delete = [rule for rule in owned_rules(tables)
                   if in_scope(rule) and rule.same_as not in wanted]
    for rule in desired:
        copies = positions.get(rule.same_as, [])
        drop = first_drop.get((rule.table, rule.chain))
        # A copy behind Docker's DROP never matches; -D removes the first match, so a
        # duplicated or misplaced rule is removed in every copy and written once, anew.
        misplaced = rule.position and drop is not None and any(at > drop for at in copies)
        if len(copies) == 1 and not misplaced:
            continue
        plan.delete.extend([rule] * len(copies))
        plan.add.append(rule)
    return plan, desired, stale


def _tables_besides_nat(nat, mappings, short_id):
    """filter always; mangle only where SCTP checksum rules may be written or removed. A removed
    container's SCTP port is only taken over by an SCTP mapping, so ours decide."""
    tables = ["filter"]
    protocols = set(mapping.protocol for mapping in mappings)
    protocols.update(_tag_of(rule)[1] for rule in owned_rules({"nat": nat})
                     if _owner_id(rule) == short_id)
    if "sctp" in protocols:
        tables.append("mangle")
    return tables


def current_mappings(rules, short_id):
    """Mappings of a container as its tagged rules say -> list of dicts."""
    found = [mapping for tag, mapping in live_mappings(rules).items() if parse_owner_tag(tag)[0] == short_id]
    return [mapping.as_dict() for mapping in sorted(found)]


def check_reservation(runner, endpoint, mappings, plan):
    """Refuse host ports and addresses the host itself holds, for the mappings this plan adds
    (Docker's and our own claims are checked while planning). Raises ConflictError."""
    added = set(rule.owner_tag for rule in plan.add if rule.table == "nat" and rule.chain == "DOCKER")
    fresh = [mapping for mapping in mappings
             if owner_tag(endpoint.container_id, mapping.protocol, mapping.host_port) in added]
    if not fresh:
        return
    errors = []
    addresses = local_addresses(runner) if any(mapping.host_ip for mapping in fresh) else None
    for mapping in fresh:
        if addresses is not None and mapping.host_ip and mapping.host_ip not in addresses:
            errors.append("host IP %s of %s is not an address of this host (it has %s), so the mapping "
                          "would never match; give one of those or leave the host IP out"
                          % (mapping.host_ip, mapping.spec(), ", ".join(sorted(addresses))))
    sockets = listeners(runner)
    for mapping in fresh:
        for listener in clashing_listeners(sockets, mapping):
            errors.append("host port %s/%d is in use on the host: a socket listens on %s (find it with "
                          "`ss -lnp sport = :%d`); the mapping would hide it from outside traffic"
                          % (mapping.protocol, mapping.host_port, listener.describe(), mapping.host_port))
    if errors:
        raise ConflictError("; ".join(errors) + ". Nothing was changed: choose a free host port, or stop "
                            "what holds it first.")


def read_ruleset(runner, engine, tables_besides_nat):
    """Find the iptables variant holding Docker's chains, read nat and the tables that
    ``tables_besides_nat(nat)`` names, detect the layout -> (Iptables, {name: Table}, Layout)."""
    iptables, nat = find_docker_iptables(runner)
    tables = iptables.read(tables_besides_nat(nat))
    tables["nat"] = nat
    return iptables, tables, detect_layout(nat, tables["filter"], engine.firewall_backend)


def engine_facts(engine, iptables, layout):
    """What the modules report about the engine."""
    facts = dict(version=engine.version, api_version=engine.api_version,
                 firewall_backend=engine.firewall_backend, iptables=iptables.name)
    facts.update(layout.describe())
    return facts


def reconcile(runner, endpoint, engine, mappings, state="present", exclusive=False,
              check_mode=False, container_exists=lambda container_id: True, lock_path=LOCK_PATH):
    """Bring this container's tagged rules to the desired state; return an Outcome.

    Raises LayoutError, ConflictError or NetfilterError, always with nothing changed.
    """
    short_id = endpoint.container_id[:12]
    with HostLock(lock_path):
        for attempt in range(1, ATTEMPTS + 1):
            iptables, tables, layout = read_ruleset(
                runner, engine, lambda nat: _tables_besides_nat(nat, mappings, short_id))
            plan, desired, stale = plan_changes(tables, layout, endpoint, mappings, state,
                                                exclusive, container_exists)
            check_reservation(runner, endpoint, mappings if state == "present" else [], plan)
            if not check_mode:
                _allow_loopback(runner, layout, endpoint, plan)
            try:
                if not check_mode:
                    apply_plan(iptables, plan, tables)
                break
            except NetfilterError:
                # The ruleset may have changed between read and write (dockerd at work):
                # the failed transaction was rolled back, so read again and re-plan.
                if attempt == ATTEMPTS:
                    raise

    removed = set(rule.same_as for rule in plan.delete)
    before = [rule for rule in owned_rules(tables)
              if rule.owner_tag in stale or _owner_id(rule) == short_id]
    after = [rule for rule in before if rule.same_as not in removed]
    kept = set(rule.same_as for rule in after)
    after += [rule for rule in plan.add if rule.same_as not in kept]
    outcome = Outcome(
        changed=bool(plan), engine=engine_facts(engine, iptables, layout),
        added=[rule.text() for rule in plan.add], removed=[rule.text() for rule in plan.delete],
        mappings=current_mappings(after, short_id),
        before=before, after=after)
    if stale:
        outcome.warnings.append(
            "took over host port(s) from removed container(s): %s" % ", ".join(sorted(stale)))
    if not check_mode:
        outcome.warnings.extend(_forget_udp_flows(runner, plan))
    return outcome


def _allow_loopback(runner, layout, endpoint, plan):
    """route_localnet on the bridge before the first loopback DNAT lands (it is never turned
    off again: Docker's own hairpin mode leaves it on, and other mappings may rely on it)."""
    if not any(rule.chain == "OUTPUT" for rule in plan.add) or not layout.userland_proxy:
        return
    error = allow_loopback_routing(runner, endpoint.bridge)
    if error:
        raise NetfilterError(error + "; loopback access needs it. Nothing was changed.")


def _forget_udp_flows(runner, plan):
    """Drop conntrack entries for newly mapped UDP host ports, as Docker does: an existing
    un-NATed flow would otherwise keep bypassing the new DNAT."""
    ports = sorted(set(rule.value("--dport") for rule in plan.add
                       if rule.table == "nat" and rule.value("-j") == "DNAT" and rule.value("-p") == "udp"))
    if not ports:
        return []
    if not runner.which("conntrack"):
        return ["conntrack not found: existing UDP flows to %s may bypass the new mapping until "
                "they expire; install conntrack." % ", ".join(ports)]
    for port in ports:
        # rc 1 means no entry matched, which is fine.
        runner.run(["conntrack", "-D", "-p", "udp", "--orig-port-dst", port])
    return []
