# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired mappings + live state -> plan, for any publisher (pure: the publisher's live state is
already read). Conflicts with other owners, taking over a removed container's ports, what a
request may remove (its host ports, or with ``exclusive`` everything of its container), and
repairing duplicated or misplaced copies all live here, once."""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.hotport.docker.plugins.module_utils.ownership import owner_tag, parse_owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import Plan


class ConflictError(RuntimeError):
    """A requested host port belongs to someone else; nothing was changed."""


@dataclass(frozen=True)
class MappingRequest:
    """What one run asks of one container's published mappings: ``mappings`` (PortMapping, both
    families) of ``endpoint``'s container, present or absent; with ``exclusive``, nothing else of it.
    ``container_exists(short ID)`` says whether another owner's container still exists."""

    endpoint: object
    mappings: tuple = ()
    state: str = "present"
    exclusive: bool = False
    container_exists: object = field(default=lambda container_id: True, compare=False)
    restoring: bool = False  # a recorded mapping the reconciler restores (apply.check_reservation)

    @property
    def short_id(self):
        return self.endpoint.container_id[:12]

    @property
    def present(self):
        return self.state == "present"

    @property
    def whole(self):
        """Whether the request is about every mapping of its container, in both families."""
        return self.exclusive or (self.state == "absent" and not self.mappings)

    def of_family(self, family):
        return [mapping for mapping in self.mappings if mapping.family == family]


def conflicts(claims, mappings, request):
    """Claims of other owners on the requested host ports -> (errors, stale tags to take over)."""
    errors, stale = [], set()
    by_port = {}  # (protocol, host port) -> claims: one look-up per mapping, not a scan
    for claim in claims:
        for port in range(claim.first, claim.last + 1):
            by_port.setdefault((claim.protocol, port), []).append(claim)
    for mapping in mappings:
        for claim in by_port.get((mapping.protocol, mapping.host_port), []):
            if claim.host_ip and mapping.listen_ip and claim.host_ip != mapping.listen_ip:
                continue
            tag = parse_owner_tag(claim.owner_tag)
            if tag is None:
                errors.append("%s is already published by Docker (%s)" % (mapping.spec(), claim.rule.text()))
            elif tag[0] == request.short_id:
                continue
            elif request.container_exists(tag[0]):
                errors.append("%s is already mapped by hotport to container %s" % (mapping.spec(), tag[0]))
            else:
                stale.add(claim.owner_tag)
    return errors, stale


def orphans_on(owned, keys, request):
    """Tags of removed containers' rules on the requested (protocol, host port) ``keys``, whether or
    not a claim (a DNAT) is left of them: dockerd empties its own chains when it starts, and what
    a removed container had elsewhere (a MASQUERADE, an INPUT drop) would stay forever."""
    tags = set(rule.owner_tag for rule in owned)
    return set(tag for tag in tags if _orphan_on(parse_owner_tag(tag), keys, request))


def _orphan_on(tag, keys, request):
    return tag is not None and (tag[1], tag[2]) in keys and tag[0] != request.short_id \
        and not request.container_exists(tag[0])


def plan_family(publisher, snapshot, request, family):
    """Plan one address family -> (Plan, stale tags taken over).

    Only rules carrying our tag are ever deleted. In scope for removal are this container's
    tagged rules for the requested host ports (all of them when the request is ``whole``), and
    those of a removed container whose host port this request takes over.
    """
    mappings = request.of_family(family)
    desired, stale = {}, set()  # identity -> rule
    keys = set((mapping.protocol, mapping.host_port) for mapping in mappings)
    if request.present:
        errors, stale = conflicts(snapshot.claims(family), mappings, request)
        stale.update(orphans_on(snapshot.owned(family), keys, request))
        if errors:
            raise ConflictError(
                "; ".join(errors) + ". Nothing was changed: choose a free host port, or remove "
                "the other mapping first.")
        # Once each: rules that several mappings need (a publisher's table structure) are shared.
        desired = dict((rule.same_as, rule) for mapping in mappings
                       for rule in publisher.render(snapshot, mapping, request.endpoint))

    def in_scope(rule):
        tag = parse_owner_tag(rule.owner_tag)
        if tag is None:
            return False
        if rule.owner_tag in stale:
            return True
        return tag[0] == request.short_id and (request.whole or (tag[1], tag[2]) in keys)

    plan = Plan()
    plan.delete = [rule for rule in snapshot.owned(family) if in_scope(rule) and rule.same_as not in desired]
    for rule in desired.values():
        copies = snapshot.copies(family, rule)
        if len(copies) == 1 and not snapshot.misplaced(family, rule):
            continue
        # Every copy goes and one is written anew: a duplicate, or a rule where it never matches.
        plan.delete.extend(copies)
        plan.add.append(rule)
    return plan, stale


def fresh_mappings(claims, request, family):
    """The request's mappings of ``family`` that its container does not publish yet, at that host
    address: only those are checked against the host's own sockets and addresses."""
    ours = set((claim.owner_tag, claim.host_ip) for claim in claims if claim.owner_tag)
    return [mapping for mapping in request.of_family(family)
            if (owner_tag(request.endpoint.container_id, mapping.protocol, mapping.host_port),
                mapping.listen_ip) not in ours]
