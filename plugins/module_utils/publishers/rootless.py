# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel method on a rootless Docker engine, as Docker itself publishes ``-p`` there, with no
root and no extra container: the engine's own firewall publisher (iptables.py or nftables.py) writes
its rules inside the engine's network namespace (entered as the engine's user, through
runners.NamespaceRunner), and one RootlessKit port per mapping (rootlesskit.py) brings the host
port into that namespace, to the same port of its address there, where the DNAT catches it.

A RootlessKit port carries no tag: it is hotport's when hotport's tagged DNAT in the namespace
publishes its port, and it forwards exactly as hotport renders one (RootlessSnapshot). Ports are
changed first, then the rules in one transaction; a failure of either undoes the ports.
"""

from __future__ import annotations

import dataclasses
import os

from ansible_collections.hotport.docker.plugins.module_utils.ports import ANY_ADDRESS
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import (
    Claim, KernelPublisher, Plan, PublisherError, Snapshot)
from ansible_collections.hotport.docker.plugins.module_utils.publishers.rootlesskit import (
    Port, RootlessKitError, port_for)
from ansible_collections.hotport.docker.plugins.module_utils.runners import NamespaceRunner

NO_SOURCES = (
    "allowed_sources cannot be enforced on a rootless engine: RootlessKit's %s port driver hands each "
    "connection to the engine's namespace from an address of its own, so the client's address is lost "
    "before any rule sees it (RootlessKit 3's builtin driver keeps TCP sources with --source-ip-transparent, "
    "which its API does not show). Leave allowed_sources out, or filter on the host in front of RootlessKit. "
    "Nothing was changed.")


class RootlessLayout:
    """What a mapping is on a rootless engine: the engine's own layout renders it inside the namespace,
    where every connection arrives at RootlessKit's ``child_ip`` (whatever host address the client
    used), plus the RootlessKit port. The host's loopback and containers reach it through RootlessKit's
    listener on the host, so every mapping has local access."""

    def __init__(self, inner, child_ip, port_driver):
        self.inner, self.child_ip, self.port_driver = inner, child_ip, port_driver

    def render(self, mapping, endpoint):
        if mapping.allowed_sources:
            raise PublisherError(NO_SOURCES % self.port_driver)
        inside = dataclasses.replace(mapping, host_ip="", local_access=False)
        return self.inner.render(inside, endpoint) + [port_for(mapping, endpoint.container_id, self.child_ip)]

    def mappings(self, rules):
        """The inner layout's read-back, with each mapping's host address from its port, and local access."""
        ports = dict((port.owner_tag, port) for port in rules if isinstance(port, Port))
        found = self.inner.mappings([rule for rule in rules if not isinstance(rule, Port)])
        for (family, tag), mapping in found.items():
            port = ports.get(tag)
            host_ip = "" if port is None or port.parent_ip == ANY_ADDRESS[4] else port.parent_ip
            found[(family, tag)] = dataclasses.replace(mapping, host_ip=host_ip, local_access=True)
        return found

    def describe(self):
        facts = dict(self.inner.describe())
        facts.update(rootless=True, port_driver=self.port_driver, child_ip=self.child_ip)
        return facts


def _catches(claim, port):
    """Whether the DNAT ``claim`` in the engine's namespace catches what RootlessKit ``port`` forwards there."""
    return all([claim.protocol == port.protocol, claim.first <= port.child_port <= claim.last,
                claim.host_ip in ("", port.child_ip), claim.owner_tag == port.owner_tag])


class RootlessSnapshot(Snapshot):
    """The namespace's rules (the inner publisher's snapshot) and RootlessKit's ports."""

    def __init__(self, inner, ports, layout):
        self.inner, self.layout = inner, layout
        ours = dict(((claim.protocol, claim.first), claim.owner_tag) for claim in inner.claims(4) if claim.owner_tag) \
            if 4 in inner.families() else {}
        self.ports, self.foreign = [], []
        for port in ports:
            tag = ours.get((port.protocol, port.parent_port))
            if tag and (port.child_ip, port.child_port) == (layout.child_ip, port.parent_port):
                self.ports.append(dataclasses.replace(port, owner_tag=tag))
            else:
                self.foreign.append(port)

    def families(self):
        return self.inner.families() & {4}

    def claims(self, family):
        """Each port RootlessKit forwards, as the host sees it (its address and port) and as the
        namespace's DNAT behind it translates it (container address and port); then the DNATs no port
        reaches."""
        inner, claims, behind = self.inner.claims(family), [], set()
        for port in self.ports + [port for port in self.foreign if port.family == family]:
            dnat = next((claim for claim in inner if _catches(claim, port)), None)
            if dnat is not None:
                behind.add(id(dnat))
            container_port = port.child_port if dnat is None or dnat.container_port is None \
                else dnat.container_port + port.child_port - dnat.first
            claims.append(Claim(port, family, port.protocol, "" if port.parent_ip == ANY_ADDRESS[family] else port.parent_ip,
                                port.parent_port, port.parent_port, port.owner_tag,
                                dnat.container_ip if dnat else port.child_ip, container_port))
        return claims + [claim for claim in inner if id(claim) not in behind]

    def owned(self, family):
        return self.inner.owned(family) + self.ports

    def present(self, family):
        return self.inner.present(family) | set(port.same_as for port in self.ports)

    def copies(self, family, rule):
        if isinstance(rule, Port):
            return [port for port in self.ports if port.same_as == rule.same_as]
        return self.inner.copies(family, rule)

    def misplaced(self, family, rule):
        return not isinstance(rule, Port) and self.inner.misplaced(family, rule)

    def mappings_of(self, rules):
        return self.layout.mappings(rules)

    def serves(self, protocol, port):
        """RootlessKit listens on the host on every port it forwards."""
        return any((found.protocol, found.parent_port) == (protocol, port) for found in self.ports + self.foreign)


class RootlessPublisher(KernelPublisher):
    """The kernel method on a rootless engine: ``inner_class``'s rules in the engine's namespace, and
    RootlessKit's ports (``rootlesskit``, a rootlesskit.RootlessKit)."""

    def __init__(self, host_runner, engine, rootlesskit, inner_class):
        pid = rootlesskit.child_pid()
        super().__init__(NamespaceRunner(host_runner, pid, rootlesskit.network_namespace(pid)), engine)
        self.rootlesskit = rootlesskit
        self.inner = inner_class(self.runner, engine)
        self.name = self.inner.name
        # The engine's user cannot take the host's lock; runs for this engine serialise on their own.
        self.lock_path = os.path.join(rootlesskit.state_dir, "hotport.lock")

    def read(self, mappings=None, short_id=None):
        port_driver, child_ip = self.rootlesskit.info()
        inner = self.inner.read(mappings, short_id)
        return RootlessSnapshot(inner, self.rootlesskit.ports(), RootlessLayout(inner.layout, child_ip, port_driver))

    def ipv6_refusal(self, specs):
        return ("IPv6 mapping(s) %s: on a rootless engine hotport publishes IPv4 (RootlessKit forwards into the "
                "namespace's IPv4 address). Map IPv4 only, or use method: sidecar." % ", ".join(specs))

    def translated(self, added):
        return self.inner.translated([rule for rule in added if not isinstance(rule, Port)])

    def prepare(self, snapshot, endpoint, added):
        self.inner.prepare(snapshot.inner, endpoint, [rule for rule in added if not isinstance(rule, Port)])

    def apply(self, snapshot, plans):
        """RootlessKit's ports first (undone on any failure), then the namespace's rules in one transaction."""
        removed, added = [], []
        rules = dict((family, Plan()) for family in snapshot.inner.families())
        try:
            for family, plan in sorted(plans.items()):
                for port in [rule for rule in plan.delete if isinstance(rule, Port)]:
                    self.rootlesskit.remove(port)
                    removed.append(port)
                for port in [rule for rule in plan.add if isinstance(rule, Port)]:
                    added.append(self.rootlesskit.add(port))
                rules[family] = Plan([rule for rule in plan.delete if not isinstance(rule, Port)],
                                     [rule for rule in plan.add if not isinstance(rule, Port)])
            self.inner.apply(snapshot.inner, rules)
        except BaseException as exc:
            problems = self._undo(added, removed)
            if problems:
                raise RootlessKitError("%s; and undoing RootlessKit's ports failed: %s. Check `rootlessctl "
                                       "--socket %s list-ports`" % (exc, problems, self.rootlesskit.api_socket))
            if isinstance(exc, RootlessKitError):
                raise RootlessKitError("%s. Everything was undone; nothing was changed." % exc)
            raise

    def _undo(self, added, removed):
        problems = []
        for port in added:
            try:
                self.rootlesskit.remove(port)
            except RootlessKitError as exc:
                problems.append(str(exc))
        for port in removed:
            try:
                self.rootlesskit.add(port)
            except RootlessKitError as exc:
                problems.append(str(exc))
        return "; ".join(problems)

    def facts(self, snapshot):
        facts = self.inner.facts(snapshot.inner)
        facts.update(snapshot.layout.describe())
        return facts
