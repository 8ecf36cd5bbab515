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
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import LayoutError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_layouts import (
    detect_layout, host_port_claims, live_mappings, require_iptables_engine)
from ansible_collections.hotport.docker.plugins.module_utils.ownership import owner_tag, parse_owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import NetfilterError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables import (
    apply_plans, find_docker_iptables)
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import (
    Plan, Table, owned_rules, parse_save)
from ansible_collections.hotport.docker.plugins.module_utils.runners import HostLock, LOCK_PATH

ATTEMPTS = 3
IPV6_OFF = ("IPv6 mapping(s) %s need Docker's ip6tables rules, and this engine writes none (its "
            "ip6tables nat DOCKER chain is missing). Turn them on in /etc/docker/daemon.json with "
            "\"ip6tables\": true (Docker 20.10 to 26 also need \"experimental\": true; on by default "
            "from 27) and restart dockerd, or map IPv4 only.")


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
        for rule, host_ip in claims.get((mapping.protocol, mapping.host_port), []):
            if host_ip and mapping.listen_ip and host_ip != mapping.listen_ip:
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


def whole_container(state, exclusive, mappings):
    """Whether a request is about every mapping of its container, in both families."""
    return exclusive or (state == "absent" and not mappings)


def plan_changes(tables, layout, endpoint, mappings, state, whole, container_exists):
    """Pure planning over the parsed tables of one family -> (Plan, desired rules, stale tags
    taken over). ``mappings`` are the request's mappings of that family.

    Only rules carrying our tag are ever deleted. In scope for removal are this
    container's tagged rules for the requested host ports (all of them with ``whole``, see
    whole_container).
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
    keys = set((mapping.protocol, mapping.host_port) for mapping in mappings)

    def in_scope(rule):
        tag = _tag_of(rule)
        if tag is None:
            return False
        if rule.owner_tag in stale:
            return True
        return tag[0] == short_id and (whole or (tag[1], tag[2]) in keys)

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
    """Mappings of a container as its tagged rules (of both families) say -> list of dicts."""
    found = [mapping for (dummy, tag), mapping in live_mappings(rules).items()
             if parse_owner_tag(tag)[0] == short_id]
    return [mapping.as_dict() for mapping in sorted(found)]


def check_reservation(runner, endpoint, mappings, added):
    """Refuse host ports and addresses the host itself holds, for the mappings whose rules are
    ``added`` (Docker's and our own claims are checked while planning). Raises ConflictError."""
    new = set((rule.family, rule.owner_tag) for rule in added if rule.table == "nat" and rule.chain == "DOCKER")
    fresh = [mapping for mapping in mappings
             if (mapping.family, owner_tag(endpoint.container_id, mapping.protocol, mapping.host_port)) in new]
    if not fresh:
        return
    errors = []
    addresses = local_addresses(runner) if any(mapping.listen_ip for mapping in fresh) else None
    for mapping in fresh:
        if addresses is not None and mapping.listen_ip and mapping.listen_ip not in addresses:
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
    ``tables_besides_nat(nat)`` names, detect the layout -> ({family: (Iptables, {name: Table})},
    Layout). Family 6 is there when Docker writes ip6tables rules too (same variant)."""
    require_iptables_engine(engine)
    iptables, nat = find_docker_iptables(runner)
    tables = iptables.read(tables_besides_nat(nat))
    tables["nat"] = nat
    rulesets = {4: (iptables, tables)}
    ip6tables = iptables.ipv6()
    if runner.which(ip6tables.binary("save")):
        # All tables at once: naming one (-t nat) would make iptables-legacy create it.
        rc, out, err = runner.run([ip6tables.binary("save")])
        found = parse_save(out, 6)
        nat6 = found.get("nat", Table("nat"))
        if rc == 0 and "DOCKER" in nat6.chains:
            tables6 = dict((name, found.get(name, Table(name))) for name in tables_besides_nat(nat6))
            tables6["nat"] = nat6
            rulesets[6] = (ip6tables, tables6)
    return rulesets, detect_layout(nat, tables["filter"])


def engine_facts(engine, rulesets, layout):
    """What the modules report about the engine."""
    facts = dict(version=engine.version, api_version=engine.api_version,
                 firewall_backend=engine.firewall_backend, iptables=rulesets[4][0].name, ipv6=6 in rulesets)
    facts.update(layout.describe())
    return facts


def reconcile(runner, endpoint, engine, mappings, state="present", exclusive=False,
              check_mode=False, container_exists=lambda container_id: True, lock_path=LOCK_PATH):
    """Bring this container's tagged rules (IPv4 and IPv6) to the desired state; return an Outcome.

    Raises LayoutError, ConflictError or NetfilterError, always with nothing changed.
    """
    short_id = endpoint.container_id[:12]
    whole = whole_container(state, exclusive, mappings)
    with HostLock(lock_path):
        for attempt in range(1, ATTEMPTS + 1):
            rulesets, layout = read_ruleset(
                runner, engine, lambda nat: _tables_besides_nat(nat, mappings, short_id))
            ipv6 = [mapping.spec() for mapping in mappings if mapping.family == 6]
            if ipv6 and 6 not in rulesets and state == "present":
                raise LayoutError(IPV6_OFF % ", ".join(ipv6))
            plans, stale = {}, set()
            for family, (iptables, tables) in sorted(rulesets.items()):
                plans[family], dummy, taken = plan_changes(
                    tables, layout, endpoint, [mapping for mapping in mappings if mapping.family == family],
                    state, whole, container_exists)
                stale.update((family, tag) for tag in taken)
            added = [rule for plan in plans.values() for rule in plan.add]
            deleted = [rule for plan in plans.values() for rule in plan.delete]
            check_reservation(runner, endpoint, mappings if state == "present" else [], added)
            if not check_mode:
                _allow_loopback(runner, layout, endpoint, added)
            try:
                if not check_mode:
                    apply_plans([(iptables, plans[family], tables)
                                 for family, (iptables, tables) in sorted(rulesets.items())])
                break
            except NetfilterError:
                # The ruleset may have changed between read and write (dockerd at work):
                # the failed transaction was rolled back, so read again and re-plan.
                if attempt == ATTEMPTS:
                    raise

    removed = set(rule.same_as for rule in deleted)
    before = [rule for family, (iptables, tables) in sorted(rulesets.items()) for rule in owned_rules(tables)
              if (family, rule.owner_tag) in stale or _owner_id(rule) == short_id]
    after = [rule for rule in before if rule.same_as not in removed]
    kept = set(rule.same_as for rule in after)
    after += [rule for rule in added if rule.same_as not in kept]
    outcome = Outcome(
        changed=bool(added or deleted), engine=engine_facts(engine, rulesets, layout),
        added=[rule.text() for rule in added], removed=[rule.text() for rule in deleted],
        mappings=current_mappings(after, short_id),
        before=before, after=after)
    if stale:
        outcome.warnings.append(
            "took over host port(s) from removed container(s): %s"
            % ", ".join(sorted(set(tag for family, tag in stale))))
    if not check_mode:
        outcome.warnings.extend(_forget_udp_flows(runner, added))
    return outcome


def _allow_loopback(runner, layout, endpoint, added):
    """route_localnet on the bridge before the first loopback DNAT lands (it is never turned
    off again: Docker's own hairpin mode leaves it on, and other mappings may rely on it)."""
    if not any(rule.chain == "OUTPUT" for rule in added) or not layout.userland_proxy:
        return
    error = allow_loopback_routing(runner, endpoint.bridge)
    if error:
        raise NetfilterError(error + "; loopback access needs it. Nothing was changed.")


def _forget_udp_flows(runner, added):
    """Drop conntrack entries for newly mapped UDP host ports, as Docker does: an existing
    un-NATed flow would otherwise keep bypassing the new DNAT."""
    flows = sorted(set((rule.family, rule.value("--dport")) for rule in added
                       if rule.table == "nat" and rule.value("-j") == "DNAT" and rule.value("-p") == "udp"))
    if not flows:
        return []
    if not runner.which("conntrack"):
        return ["conntrack not found: existing UDP flows to %s may bypass the new mapping until "
                "they expire; install conntrack." % ", ".join(sorted(set(port for family, port in flows)))]
    for family, port in flows:
        # rc 1 means no entry matched, which is fine.
        runner.run(["conntrack", "-D", "-f", "ipv%d" % family, "-p", "udp", "--orig-port-dst", port])
    return []
