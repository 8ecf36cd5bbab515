# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A MappingRequest (planner.py) -> published, through the publisher registry.py chose.

The one entry point that the module and the reconciler service call (through desired.py):
under the host lock, read the live state once (a publisher's Snapshot), plan (planner.py),
check the host's own sockets and addresses, apply in one transaction, retry on a fresh read
when the ruleset changed under us (transaction). Also the reconciler's sweep of removed
containers' rules (remove_orphans).
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import ResolveError
from ansible_collections.hotport.docker.plugins.module_utils.host import (
    clashing_listeners, forget_udp_flows, interface_addresses, listeners, own_addresses, socket_owner)
from ansible_collections.hotport.docker.plugins.module_utils.ownership import owner_id, parse_owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.planner import (
    ConflictError, fresh_mappings, plan_family)
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import LayoutError, NetfilterError, Plan
from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import kernel_publisher
from ansible_collections.hotport.docker.plugins.module_utils.runners import LOCK_PATH, HostLock

ATTEMPTS = 3
# The sidecar publisher runs without root (and maybe far from the host): Docker serialises its API.
NO_LOCK = contextlib.nullcontext()


@dataclass
class Outcome:
    changed: bool
    engine: dict
    added: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    mappings: list = field(default_factory=list)
    before: list = field(default_factory=list)  # rules (rendered as text only for diff mode)
    after: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def engine_facts(engine, publisher=None, snapshot=None):
    """What the modules report about the engine (and the publisher, when one read it)."""
    facts = dict(version=engine.version, api_version=engine.api_version, firewall_backend=engine.firewall_backend)
    if publisher is not None:
        facts.update(publisher.facts(snapshot))
    return facts


def current_mappings(snapshot, rules, short_id):
    """Mappings of a container as its tagged rules (of both families) say -> list of dicts."""
    found = [mapping for (dummy, tag), mapping in snapshot.mappings_of(rules).items()
             if parse_owner_tag(tag)[0] == short_id]
    return [mapping.as_dict() for mapping in sorted(found)]


def check_reservation(runner, mappings, addresses, restoring=False):
    """Refuse host ports and ``addresses`` (this host's own) the host itself holds (Docker's and our
    own claims are checked while planning). Raises ConflictError. A socket of hotport's own
    reconciler (port_holder.py) holds the port for the mapping and is no clash; when ``restoring``
    a recorded mapping, an ordinary user's socket does not win either -> warnings naming it."""
    if not mappings:
        return []
    errors, warnings = [], []
    for mapping in mappings:
        if mapping.listen_ip and mapping.listen_ip not in addresses:
            errors.append("host IP %s of %s is not an address of this host (it has %s), so the mapping "
                          "would never match; give one of those or leave the host IP out"
                          % (mapping.host_ip, mapping.spec(), ", ".join(sorted(addresses))))
    sockets = listeners(runner)
    for mapping in mappings:
        for listener in clashing_listeners(sockets, mapping):
            owner = socket_owner(listener.inode)
            if owner is not None and owner.holds_ports:
                continue  # hotport's reconciler holds the port for this mapping
            held_by = "held by %s" % owner.describe() if owner else "of uid %d" % listener.uid
            if restoring and listener.uid != 0:
                warnings.append("restored %s over a socket %s on %s: it no longer receives the mapping's outside "
                                "traffic; it was bound while the mapping's rules were missing (dockerd restarting, "
                                "a reboot). Stop it, or remove the mapping if the port is meant to be its."
                                % (mapping.spec(), held_by, listener.describe()))
                continue
            errors.append("host port %s/%d is in use on the host: a socket listens on %s (%s; find it with "
                          "`ss -lnp sport = :%d`); the mapping would hide it from outside traffic"
                          % (mapping.protocol, mapping.host_port, listener.describe(), held_by, mapping.host_port))
    if errors:
        raise ConflictError("; ".join(errors) + ". Nothing was changed: choose a free host port, or stop "
                            "what holds it first.")
    return warnings


def host_interfaces(runner):
    """This host's {interface: [addresses]}, which a kernel run checks the container's address and
    the requested host addresses against (NetfilterError when they cannot be read)."""
    interfaces = interface_addresses(runner)
    if interfaces is None:
        raise NetfilterError("`ip -o addr show` failed; cannot check the container's address against this "
                             "host's bridges. Nothing was changed.")
    return interfaces


def check_destination(interfaces, endpoint, families):
    """Refuse a container address that this host's bridge does not hold: the engine's answers are
    checked against the kernel's own truth (``interfaces``, host_interfaces) before a DNAT points
    anywhere (ResolveError).

    The bridge must be on this host (else the engine is another machine's, whose containers this
    host's rules cannot reach), and each address of ``families`` inside one of the bridge's own
    subnets, yet not an address of this host."""
    if endpoint.bridge not in interfaces:
        raise ResolveError(
            "network %r's bridge %s is not on this host (or has no address): the engine that docker_host "
            "reaches is not this host's, and this host's kernel rules cannot reach its containers. Run "
            "the module on the engine's own host (method: kernel writes the firewall where it runs), or "
            "use method: sidecar, which publishes through the engine itself. Nothing was changed."
            % (endpoint.network, endpoint.bridge))
    own = own_addresses(interfaces)
    for family in sorted(families):
        ip = endpoint.address(family)
        subnets = [address.network for address in interfaces[endpoint.bridge] if address.version == family]
        if ip in own or not any(ipaddress.ip_address(ip) in subnet for subnet in subnets):
            raise ResolveError(
                "the engine says container %r is at %s on network %r, but bridge %s on this host holds %s; "
                "hotport forwards only to a container address inside its bridge's subnet. Nothing was "
                "changed; check which engine docker_host reaches." % (
                    endpoint.name, ip, endpoint.network, endpoint.bridge,
                    ", ".join(str(subnet) for subnet in subnets) or "no IPv%d subnet" % family))


def transaction(publisher, read, plan, check_mode=False, lock=NO_LOCK):
    """Under ``lock``: read the live state (``read()`` -> Snapshot), plan ({family: Plan} =
    ``plan(snapshot)``), apply in one transaction -> (snapshot, plans). A failed apply was rolled
    back: the ruleset may have changed between read and write (dockerd at work), so read and plan
    again, up to ATTEMPTS times. In check mode nothing is applied."""
    with lock:
        for attempt in range(1, ATTEMPTS + 1):
            snapshot = read()
            plans = plan(snapshot)
            if check_mode:
                break
            try:
                publisher.apply(snapshot, plans)
                break
            except NetfilterError:
                if attempt == ATTEMPTS:
                    raise
    return snapshot, plans


def remove_orphans(runner, engine, existing_ids, client=None, lock_path=LOCK_PATH, check_mode=False):
    """Delete, in one transaction, every hotport rule (any table and chain, both families) whose
    container is not among ``existing_ids`` (full IDs of every container, running or not) -> the
    removed rules' texts. dockerd empties its own chains when it starts, which takes a removed
    container's DNAT but leaves the rest of its rules, forwarding nowhere or to a stranger."""
    publisher = kernel_publisher(runner, engine, client)

    def removed(short_id):
        return not any(container_id.startswith(short_id) for container_id in existing_ids)

    def plan(snapshot):
        return dict((family, Plan(delete=[rule for rule in snapshot.owned(family)
                                          if owner_id(rule) and removed(owner_id(rule))]))
                    for family in sorted(snapshot.families()))

    plans = transaction(publisher, publisher.read, plan, check_mode,
                        HostLock(publisher.lock_path or lock_path, create=not check_mode))[1]
    return [rule.text() for plan in plans.values() for rule in plan.delete]


def reconcile(runner, engine, publisher, request, check_mode=False, lock_path=LOCK_PATH):
    """Bring the published mappings (IPv4 and IPv6) of ``request``'s container (a MappingRequest) to
    the desired state -> Outcome.

    Raises ConflictError or a PublisherError (LayoutError, NetfilterError), always with nothing
    changed.
    """
    endpoint, short_id = request.endpoint, request.short_id
    checked = publisher.kernel and request.present
    if checked:
        # The bridge is where the publisher writes (a rootless engine's namespace); host ports and
        # addresses are the host's.
        bridges = host_interfaces(publisher.runner)
        check_destination(bridges, endpoint, set(mapping.family for mapping in request.mappings))
        interfaces = bridges if publisher.runner is runner else host_interfaces(runner)
    stale, restored_over = set(), []

    def plan(snapshot):
        families = snapshot.families()
        ipv6 = [mapping.spec() for mapping in request.of_family(6)]
        if ipv6 and 6 not in families and request.present:
            raise LayoutError(publisher.ipv6_refusal(ipv6))
        plans, fresh = {}, []
        stale.clear()
        restored_over[:] = []
        for family in sorted(families):
            plans[family], taken = plan_family(publisher, snapshot, request, family)
            stale.update((family, tag) for tag in taken)
            if request.present:
                fresh += fresh_mappings(snapshot.claims(family), request, family)
        if checked:
            restored_over.extend(check_reservation(runner, fresh, own_addresses(interfaces), request.restoring))
        if not check_mode:
            publisher.prepare(snapshot, endpoint, [rule for plan in plans.values() for rule in plan.add])
        return plans

    snapshot, plans = transaction(publisher, lambda: publisher.read(request.mappings, short_id), plan, check_mode,
                                  HostLock(publisher.lock_path or lock_path, create=not check_mode) if publisher.kernel
                                  else NO_LOCK)
    added = [rule for plan in plans.values() for rule in plan.add]
    deleted = [rule for plan in plans.values() for rule in plan.delete]
    removed = set(rule.same_as for rule in deleted)
    before = [rule for family in sorted(snapshot.families()) for rule in snapshot.owned(family)
              if (family, rule.owner_tag) in stale or owner_id(rule) == short_id]
    after = dict((rule.same_as, rule) for rule in before if rule.same_as not in removed)
    for rule in added:
        after.setdefault(rule.same_as, rule)
    after = list(after.values())
    outcome = Outcome(
        changed=bool(added or deleted), engine=engine_facts(engine, publisher, snapshot),
        added=[rule.text() for rule in added], removed=[rule.text() for rule in deleted],
        mappings=current_mappings(snapshot, after, short_id), before=before, after=after)
    outcome.warnings.extend(list(publisher.warnings) + restored_over)
    if stale:
        outcome.warnings.append(
            "took over host port(s) from removed container(s): %s"
            % ", ".join(sorted(set(tag for family, tag in stale))))
    if not check_mode:
        outcome.warnings.extend(forget_udp_flows(publisher.runner if publisher.kernel else runner, sorted(
            (family, port) for family, protocol, port in publisher.translated(added) if protocol == "udp")))
    return outcome
