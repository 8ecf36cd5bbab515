# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What marks a rule (or a sidecar) as hotport's: a tag naming the container, protocol and host
port. Only what carries it is ever changed or removed."""

from __future__ import annotations

TAG_PREFIX = "hotport:"


def owner_tag(container_id, protocol, host_port):
    """The comment that marks a rule as ours: container short ID, protocol, host port."""
    return "%s%s:%s/%d" % (TAG_PREFIX, container_id[:12], protocol, host_port)


def parse_owner_tag(tag):
    """'hotport:<id12>:tcp/8080' -> ('<id12>', 'tcp', 8080); None for anything else."""
    if not tag or not tag.startswith(TAG_PREFIX):
        return None
    container_id, sep, port_text = tag[len(TAG_PREFIX):].partition(":")
    protocol, slash, port = port_text.partition("/")
    if not (sep and slash and port.isdigit()):
        return None
    return container_id, protocol, int(port)


def owner_id(rule):
    """The container short ID in a rule's tag (None when the rule is not hotport's)."""
    tag = parse_owner_tag(rule.owner_tag)
    return tag[0] if tag else None
