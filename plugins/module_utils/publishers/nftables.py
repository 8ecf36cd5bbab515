# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nftables publisher, for Docker's nftables firewall backend: hotport's own tables.

Docker's tables (``ip docker-bridges``, ``ip6 docker-bridges``) are Docker's: re-created at every
start and never written here. hotport keeps ``table ip hotport`` and ``table ip6 hotport``, whose
rules nftables_render.py renders and nftables_rules.py models. Its I/O lives here: one read of nft's
JSON listing per attempt, and one ``nft -f`` batch per run that changes both families atomically
(nft commits a batch whole or not at all). The batch is nft's text syntax: nft 1.0.6 (Debian 12)
cannot take hotport's maps as JSON (it reads a concatenated map type as a set, and crashes on a
DNAT through such a map).
"""

from __future__ import annotations

import json

from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import (
    KernelPublisher, LayoutError, NetfilterError)
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables_render import (
    NftablesLayout, read_listing)
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables_rules import (
    CHAINS, DOCKER_TABLE, FAMILIES, TABLE, NftablesSnapshot, NftElement, set_declaration)

NO_MARK = (
    "this Docker engine uses its nftables firewall backend (docker info: FirewallBackend %r), "
    "which drops forwarded packets to a container port it did not publish itself (its \"UNPUBLISHED "
    "PORT DROP\") unless they carry the mark of its bridge-accept-fwmark option, and this engine "
    "has none (no \"ALLOW FW MARK\" rule in table ip docker-bridges). Add "
    "\"bridge-accept-fwmark\": \"0x4000000/0x4000000\" to /etc/docker/daemon.json and restart "
    "dockerd (containers without a restart policy stay stopped), or use method: sidecar, which "
    "publishes through Docker itself and needs neither. Nothing was changed.")


class NftablesPublisher(KernelPublisher):
    """Publishes in hotport's own nft tables, marking the flows for Docker's accept rule."""

    name = "nftables"

    def read(self, mappings=None, short_id=None):
        if not self.runner.which("nft"):
            raise NetfilterError("nft not found on this host; install the nftables package (Docker's "
                                 "nftables firewall backend needs it too).")
        rc, out, err = self.runner.run(["nft", "-j", "list", "ruleset"])
        try:
            document = json.loads(out) if rc == 0 else None
        except ValueError as exc:
            err = "its JSON does not parse (%s)" % exc
            document = None
        if not isinstance(document, dict):
            raise NetfilterError("nft -j list ruleset failed (rc=%d): %s" % (rc, err.strip()))
        tables, mark = read_listing(document)
        if (4, DOCKER_TABLE) not in tables:
            raise LayoutError(
                "Docker's nftables table ip docker-bridges was not found, although the engine reports "
                "its nftables firewall backend (%r). Is dockerd running? Restart it and retry."
                % self.engine.firewall_backend)
        if mark is None:
            raise LayoutError(NO_MARK % self.engine.firewall_backend)
        return NftablesSnapshot(tables, NftablesLayout(mark))

    def ipv6_refusal(self, specs):
        return ("IPv6 mapping(s) %s need Docker's IPv6 rules, and this engine writes none (there is no "
                "table ip6 docker-bridges). Turn them on in /etc/docker/daemon.json with \"ip6tables\": "
                "true and restart dockerd, or map IPv4 only." % ", ".join(specs))

    def translated(self, added):
        return set((rule.family, rule.translation.protocol, rule.translation.first) for rule in added
                   if rule.owner_tag and rule.translation and rule.chain != "nat-output")

    def prepare(self, snapshot, endpoint, added):
        """route_localnet before the first loopback DNAT lands."""
        if any(rule.chain == "nat-output" and rule.owner_tag for rule in added):
            self.route_loopback(endpoint.bridge)

    def apply(self, snapshot, plans):
        batch = batch_text(plans)
        if not batch:
            return
        rc, out, err = self.runner.run(["nft", "-f", "-"], data=batch)
        if rc != 0:
            raise NetfilterError("nft -f failed (rc=%d): %s; nothing was changed (nft applies a batch "
                                 "whole or not at all)." % (rc, (err or out).strip()))

    def facts(self, snapshot):
        facts = dict(publisher=self.name, table="%s %s" % (FAMILIES[4], TABLE), ipv6=6 in snapshot.families())
        facts.update(snapshot.layout.describe())
        return facts


def batch_text(plans):
    """One nft batch for {family: Plan}: hotport's tables, chains, and the sets and maps that added
    rules and elements use (``add`` is a no-op for what exists), the deletions (rules by handle,
    elements by key), then the additions (the structure rules at the top of their chains, where a
    table of an older hotport lacks one)."""
    lines = []
    for family, plan in sorted(plans.items()):
        if plan.add:
            v = FAMILIES[family]
            lines.append("add table %s %s" % (v, TABLE))
            for chain, definition in CHAINS:
                lines.append("add chain %s %s %s%s" % (v, TABLE, chain, " { %s }" % definition if definition else ""))
            sets = set(rule.chain for rule in plan.add if isinstance(rule, NftElement))
            sets.update(word[1:] for rule in plan.add for word in rule.expr.split() if word.startswith("@"))
            lines += [set_declaration(family, name) for name in sorted(sets)]
    for family, plan in sorted(plans.items()):
        lines += [rule.delete_command() for rule in plan.delete]
    for family, plan in sorted(plans.items()):
        lines += [rule.text() for rule in plan.add]
    return "".join(line + "\n" for line in lines)
