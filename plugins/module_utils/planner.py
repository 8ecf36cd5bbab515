# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired mappings + live state -> plan, for any publisher (pure: the publisher's live state is
already read). Conflicts with other owners, taking over a removed container's ports, what a
request may remove (its host ports, or with ``exclusive`` everything of its container), and
repairing duplicated or misplaced copies all live here, once."""

from __future__ import annotations

from ansible_collections.hotport.docker.plugins.module_utils.ownership import owner_tag, parse_owner_tag


class ConflictError(RuntimeError):
    """A requested host port belongs to someone else; nothing was changed."""


def whole_container(state, exclusive, mappings):
    """Whether a request is about every mapping of its container, in both families."""
    return exclusive or (state == "absent" and not mappings)


def conflicts(claims, mappings, short_id, container_exists):
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
            elif tag[0] == short_id:
                continue
            elif container_exists(tag[0]):
                errors.append("%s is already mapped by hotport to container %s" % (mapping.spec(), tag[0]))
            else:
                stale.add(claim.owner_tag)
    return errors, stale


def orphans_on(owned, keys, short_id, container_exists):
    """Tags of removed containers' rules on the requested (protocol, host port) ``keys``, whether or
    not a claim (a DNAT) is left of them: dockerd empties its own chains when it starts, and what
    a removed container had elsewhere (a MASQUERADE, an INPUT drop) would stay forever."""
    tags = set(rule.owner_tag for rule in owned)
    return set(tag for tag in tags if _orphan_on(parse_owner_tag(tag), keys, short_id, container_exists))


def _orphan_on(tag, keys, short_id, container_exists):
    return tag is not None and (tag[1], tag[2]) in keys and tag[0] != short_id and not container_exists(tag[0])


def plan_family(publisher, live, family, claims, endpoint, mappings, state, whole, container_exists):
    """Plan one address family -> (Plan, stale tags taken over). ``mappings`` are the request's
    mappings of that family, ``claims`` the family's live claims (publisher.claims).

    Only rules carrying our tag are ever deleted. In scope for removal are this container's
    tagged rules for the requested host ports (all of them with ``whole``, see whole_container),
    and those of a removed container whose host port this request takes over.
    """
    short_id = endpoint.container_id[:12]
    desired, stale = [], set()
    keys = set((mapping.protocol, mapping.host_port) for mapping in mappings)
    if state == "present":
        errors, stale = conflicts(claims, mappings, short_id, container_exists)
        stale.update(orphans_on(publisher.owned(live, family), keys, short_id, container_exists))
        if errors:
            raise ConflictError(
                "; ".join(errors) + ". Nothing was changed: choose a free host port, or remove "
                "the other mapping first.")
        # Once each: rules that several mappings need (a publisher's table structure) are shared.
        desired = list(dict((rule.same_as, rule) for mapping in mappings
                            for rule in publisher.render(live, mapping, endpoint)).values())

    def in_scope(rule):
        tag = parse_owner_tag(rule.owner_tag)
        if tag is None:
            return False
        if rule.owner_tag in stale:
            return True
        return tag[0] == short_id and (whole or (tag[1], tag[2]) in keys)

    wanted = set(rule.same_as for rule in desired)
    plan = publisher.new_plan()
    plan.delete = [rule for rule in publisher.owned(live, family)
                   if in_scope(rule) and rule.same_as not in wanted]
    for rule in desired:
        copies = publisher.copies(live, family, rule)
        if len(copies) == 1 and not publisher.misplaced(live, family, rule):
            continue
        # Every copy goes and one is written anew: a duplicate, or a rule where it never matches.
        plan.delete.extend(copies)
        plan.add.append(rule)
    return plan, stale


def fresh_mappings(claims, endpoint, mappings):
    """The mappings this container does not publish yet, at that host address: only those are
    checked against the host's own sockets and addresses."""
    ours = set((claim.family, claim.owner_tag, claim.host_ip) for claim in claims if claim.owner_tag)
    return [mapping for mapping in mappings
            if (mapping.family, owner_tag(endpoint.container_id, mapping.protocol, mapping.host_port),
                mapping.listen_ip) not in ours]
