# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every published port on a host, Docker's and ours, with what is wrong with it (pure, over the
live state a publisher read).

A hotport mapping is stale when its container is gone, stopped, or no longer at the address
its DNAT forwards to (a restart moved it), and incomplete when some of the rules the layout
renders for it are missing. A host port claimed by more than one owner, or one a socket on
the host listens on (ours only: Docker's docker-proxy listens on Docker's ports), is a clash.
"""

from __future__ import annotations

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import Endpoint
from ansible_collections.hotport.docker.plugins.module_utils.host import clashing_listeners, held_by_hotport
from ansible_collections.hotport.docker.plugins.module_utils.ownership import parse_owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.expiry import seconds_left
from ansible_collections.hotport.docker.plugins.module_utils.ports import ANY_ADDRESS, PortSpecError, address_family, parse_ports


def _container_view(endpoint, running):
    return {"id": endpoint.container_id, "name": endpoint.name, "running": running,
            "network": endpoint.network, "ip": endpoint.ip, "ip6": endpoint.ip6, "bridge": endpoint.bridge}


def _addressless_view(facts):
    """A container's view when no endpoint of it is the one a mapping points at."""
    return _container_view(Endpoint(facts.container_id, facts.name, "", "", ""), facts.running)


def inventory(publisher, snapshot, containers, sockets=()):
    """A kernel publisher's Snapshot, every container's ContainerFacts and the host's listening
    sockets -> list of dicts, one per published host port and family, sorted."""
    found = []
    sockets = [listener for listener in sockets if not snapshot.serves(listener.protocol, listener.port)]
    for family in sorted(snapshot.families()):
        found += _FamilyListing(publisher, snapshot, family, containers).items(sockets)
    _mark_clashes(found)
    return sorted(found, key=item_order)


def item_order(item):
    """The order the info module lists items in."""
    return item["protocol"], item["host_port"], item["host_ip"], item["owner"]


def listing_item(**fields):
    """One item of the listing: what nobody says otherwise is a kernel mapping, whole and fresh."""
    found = {"owner": "hotport", "method": "kernel", "tag": "", "stale": False, "stale_reason": "",
             "complete": True, "container": None, "allowed_sources": [], "local_access": False,
             "clashes_with": []}
    found.update(fields)
    return found


class _FamilyListing:
    """The items of one address family of a snapshot."""

    def __init__(self, publisher, snapshot, family, containers):
        self.publisher, self.snapshot, self.family, self.containers = publisher, snapshot, family, containers
        self.claims = snapshot.claims(family)
        self.present = snapshot.present(family)
        self.ours = snapshot.mappings_of(snapshot.owned(family))

    def items(self, sockets):
        family = self.family
        by_ip = dict((endpoint.address(family), (endpoint, facts.running))
                     for facts in self.containers for endpoint in facts.endpoints if endpoint.address(family))
        found = []
        for claim in self.claims:
            ip, container_port = claim.container_ip, claim.container_port
            tag = parse_owner_tag(claim.owner_tag)
            for offset, host_port in enumerate(range(claim.first, claim.last + 1)):
                listed = listing_item(owner="hotport" if tag else "docker", protocol=claim.protocol,
                                      host_ip=claim.host_ip or ANY_ADDRESS[family], host_port=host_port, container_ip=ip,
                                      container_port=None if container_port is None else container_port + offset,
                                      tag=claim.owner_tag or "")
                mapping = self.ours.get((family, claim.owner_tag)) if tag else None
                if mapping:
                    listed["container"], listed["stale_reason"], listed["complete"] = self.status(tag, ip, mapping)
                    listed["stale"] = bool(listed["stale_reason"])
                    listed["allowed_sources"], listed["local_access"] = list(mapping.allowed_sources), mapping.local_access
                    listed["clashes_with"] = ["socket:" + listener.describe()
                                              for listener in clashing_listeners(sockets, mapping)
                                              if not held_by_hotport(listener)]
                elif ip in by_ip:
                    listed["container"] = _container_view(*by_ip[ip])
                found.append(listed)
        return found + self.without_dnat()

    def status(self, tag, ip, mapping):
        """(container view or None, stale reason or '', complete) of one of our mappings."""
        matches = [facts for facts in self.containers if facts.container_id.startswith(tag[0])]
        if not matches:
            return None, "container removed", False
        facts = matches[0]
        placeholder = _addressless_view(facts)
        if not facts.running:
            return placeholder, "container stopped", False
        at = [endpoint for endpoint in facts.endpoints if endpoint.address(self.family) == ip]
        if not at:
            now = ", ".join("%s on %s" % (endpoint.address(self.family), endpoint.network)
                            for endpoint in facts.endpoints if endpoint.address(self.family))
            return placeholder, "address changed (container now at %s)" % (now or "no address"), False
        complete = all(rule.same_as in self.present for rule in self.publisher.render(self.snapshot, mapping, at[0]))
        return _container_view(at[0], True), "", complete

    def without_dnat(self):
        """Items for hotport rules whose mapping claims no host port any more: dockerd emptied its
        chains (the DNAT went with them) and the rest stayed. Of a removed container they are orphans
        that nothing forwards for (the reconciler's passes remove them); of a container that exists,
        a re-run writes the DNAT back."""
        claimed = set(claim.owner_tag for claim in self.claims if claim.owner_tag)
        counts = {}
        for rule in self.snapshot.owned(self.family):
            if parse_owner_tag(rule.owner_tag) and rule.owner_tag not in claimed:
                counts[rule.owner_tag] = counts.get(rule.owner_tag, 0) + 1
        items = []
        for tag, count in sorted(counts.items()):
            short_id, protocol, host_port = parse_owner_tag(tag)
            facts = next((facts for facts in self.containers if facts.container_id.startswith(short_id)), None)
            if facts is None:
                reason = "orphaned: container removed, %d rule(s) left without their DNAT" % count
            else:
                reason = "incomplete: %d rule(s) left without their DNAT (dockerd restarted?); a re-run " \
                         "writes it back" % count
            items.append(listing_item(protocol=protocol, host_ip=ANY_ADDRESS[self.family], host_port=host_port,
                                      container_ip="", container_port=None, tag=tag, stale=True, stale_reason=reason,
                                      complete=False, container=facts and _addressless_view(facts)))
        return items


def _overlap(one, other):
    """Same protocol and port, and the same address or every address of that family."""
    if one["protocol"] != other["protocol"] or one["host_port"] != other["host_port"]:
        return False
    family = address_family(one["host_ip"])
    if family != address_family(other["host_ip"]):
        return False
    return one["host_ip"] == other["host_ip"] or ANY_ADDRESS[family] in (one["host_ip"], other["host_ip"])


def _owner_name(item):
    return item["tag"] or "docker:%s" % ((item["container"] or {}).get("name") or item["container_ip"])


def _mark_clashes(items):
    """Two owners of one host port: Docker's port allocator does not know our mappings and
    may hand the same port to a new -p container later; both then fight over the packets."""
    for item in items:
        item["clashes_with"] += [_owner_name(other) for other in items
                                 if other is not item and _overlap(item, other)]


def listed_once(kernel_items, sidecars):
    """Both listings together: Docker publishes each sidecar's port, and that port is listed once,
    as the sidecar's item (which knows the target), not also as a port Docker publishes."""
    sidecar_names = set(item["sidecar"] for item in sidecars)
    kernel_items = [item for item in kernel_items
                    if not (item["owner"] == "docker" and (item["container"] or {}).get("name") in sidecar_names)]
    return sorted(kernel_items + sidecars, key=item_order)


def with_ends(items, entries, now):
    """``items`` with the end of each temporary hotport mapping the state file ``entries`` record:
    ``expires_at`` (UTC) and ``expires_in`` (seconds left), both None for a lasting one."""
    ends = {}
    for entry in entries:
        recorded_ends = entry.get("expires_at") if isinstance(entry, dict) else None
        if not isinstance(recorded_ends, dict):
            continue
        for item in entry.get("ports") or []:
            try:
                [mapping] = parse_ports([item])
            except (PortSpecError, ValueError):
                continue
            end = recorded_ends.get(mapping.spec())
            if end:
                ends[(entry.get("container"), entry.get("method") or "kernel") + mapping.key] = end
    for item in items:
        container = item["container"] or {}
        end = None
        if item["owner"] == "hotport":
            for name in (container.get("name"), container.get("id"), (container.get("id") or "")[:12]):
                key = (name, item["method"], item["protocol"], item["host_port"], address_family(item["host_ip"]))
                end = end or ends.get(key)
        item["expires_at"], item["expires_in"] = end, seconds_left(end, now) if end else None
    return items
