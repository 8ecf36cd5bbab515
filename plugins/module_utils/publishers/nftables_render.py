# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hotport's nft rules for a mapping, and reading them back: each renderer beside the code that
recognises what it rendered in nft's JSON listing (``nft -j list ruleset``), which keeps its shape
across nft versions where the text listing does not.

- ``nat-prerouting`` and ``nat-output`` (priority dstnat - 1, ahead of Docker's) jump, for packets
  to the host's own addresses, to ``nat-mappings``, which holds the DNATs;
- ``filter-forward`` (priority filter - 1) sets the mark that Docker's ``bridge-accept-fwmark``
  option makes its bridge chains accept, on exactly the DNATed flows of a mapping: an accept in
  another table is not final, and Docker's ``UNPUBLISHED PORT DROP`` would win;
- a plain mapping (no host IP, sources or local access) is no rule of its own but an element of its
  bridge's DNAT map (host port -> container address and port) and of its set of flows to mark, which
  one DNAT rule and one mark rule per protocol look up: a new connection costs one hash look-up
  however many mappings there are, where a rule per mapping made the connection rate fall to a
  fifth at 10 000 mappings (docs/docsite/rst/guide_benchmarks.rst);
- ``filter-input`` drops what ``allowed_sources`` leaves untranslated (it would reach the host);
- ``raw-prerouting`` drops what arrives for a loopback mapping from anywhere but ``lo``, as Docker does;
- ``nat-postrouting`` masquerades the loopback and self-hairpin paths of ``local_access``.
"""

from __future__ import annotations

import hashlib
import json

from ansible_collections.hotport.docker.plugins.module_utils.ownership import owner_tag, parse_owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.ports import PortMapping, ordered_sources
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables_rules import (
    ACCEPT_MARK_COMMENT, DNAT_MAP, DOCKER_DNAT_CHAIN, DOCKER_TABLE, FAMILIES, FORWARD_SET, LOOPBACK, STRUCTURE, TABLE, AcceptMark,
    NftElement, NftRule, Translation, bridge_set_name, is_dnat_map)

FAMILY_OF = dict((name, family) for family, name in FAMILIES.items())
LISTED = ("table", "chain", "rule", "set", "map")  # the kinds of objects of nft's listing that are read
PORT_PROTOCOLS = ("tcp", "udp", "sctp")


def digest(family, chain, expr):
    """What a rule's comment carries of its rendering: a rule rendered differently is another rule."""
    return hashlib.sha1(("%d %s %s" % (family, chain, expr)).encode()).hexdigest()[:10]


def tagged(family, chain, expr, tag, kind=NftRule, translation=None):
    return kind(family, chain, expr, "%s %s" % (tag, digest(family, chain, expr)), translation=translation)


def bridge_structure(family, chain, expr, name):
    """A rule of the table for one bridge (or bridge and protocol), named ``name``: its comment
    carries a digest, so that a rule rendered differently (another accept mark) is rewritten."""
    return NftRule(family, chain, expr, "%s %s %s" % (STRUCTURE, name, digest(family, chain, expr)))


def structure(family):
    """The rules of hotport's table that no mapping owns: the jumps from its nat base chains into
    nat-mappings, for packets to the host's own addresses (the output one not for loopback, as
    Docker's: local_access adds its own); and, first in filter-forward, the way out for packets of
    flows already under way: Docker accepts those itself, and without it every packet of every
    flow through the host would walk one mark rule per mapping (throughput fell to 1/20 at
    10 000 mappings, docs/docsite/rst/guide_benchmarks.rst)."""
    v = FAMILIES[family]
    return [NftRule(family, "nat-prerouting", "fib daddr type local jump nat-mappings", STRUCTURE),
            NftRule(family, "nat-output", "%s daddr != %s fib daddr type local jump nat-mappings"
                    % (v, LOOPBACK[family]), STRUCTURE),
            NftRule(family, "filter-forward", "ct state established,related return", STRUCTURE)]


def render(mapping, endpoint, mark):
    """PortMapping + Endpoint -> hotport's nft rules for it (and the structure its table needs).

    A plain mapping is two elements, of its bridge's DNAT map and of its set of flows to mark
    (render_plain). With allowed_sources, one DNAT rule per source, and a filter-input drop for
    everyone else (not translated, they would reach the host). With local_access, the DNAT also
    serves containers (no ``iifname != BRIDGE``), plus the loopback DNAT (IPv4) and the masquerades
    those paths need.
    """
    family, protocol, bridge = mapping.family, mapping.protocol, endpoint.bridge
    v, ip = FAMILIES[family], endpoint.address(family)
    tag = owner_tag(endpoint.container_id, protocol, mapping.host_port)
    if not (mapping.listen_ip or mapping.allowed_sources or mapping.local_access):
        return structure(family) + render_plain(mapping, endpoint, mark, tag)
    to = ("[%s]:%d" if family == 6 else "%s:%d") % (ip, mapping.container_port)
    host_ip = "%s daddr %s " % (v, mapping.listen_ip) if mapping.listen_ip else ""
    host_port = "%s dport %d" % (protocol, mapping.host_port)
    container_port = "%s dport %d" % (protocol, mapping.container_port)
    local = mapping.local_access
    from_outside = "" if local else "iifname != \"%s\" " % bridge
    rules = []
    for source in mapping.allowed_sources or [""]:
        source_match = "%s saddr %s " % (v, _as_nft_prints(source)) if source else ""
        rules.append(tagged(family, "nat-mappings", "%s%s%s%s dnat to %s" % (
            host_ip, source_match, from_outside, host_port, to), tag, translation=Translation(
                protocol, mapping.host_port, mapping.host_port, ip, mapping.container_port, mapping.listen_ip,
                source, not local)))
    rules.append(tagged(family, "filter-forward", "%s daddr %s oifname \"%s\" %s ct status dnat meta mark set %s" % (
        v, ip, bridge, container_port, mark.setter()), tag))
    if mapping.allowed_sources:
        rules.append(tagged(family, "filter-input", "%s%s drop" % (host_ip, host_port), tag))
    if mapping.loopback_only and family == 4:
        # Docker's "DROP REMOTE LOOPBACK": a neighbour on the link can send to 127.0.0.1.
        rules.append(tagged(family, "raw-prerouting", "iifname != \"lo\" %s%s drop" % (host_ip, host_port), tag))
    if local:
        rules.append(tagged(family, "nat-postrouting", "%s saddr %s %s daddr %s %s masquerade" % (
            v, ip, v, ip, container_port), tag))
        if family == 4:
            loopback = mapping.listen_ip if mapping.loopback_only else LOOPBACK[4]
            rules.append(tagged(family, "nat-output", "ip daddr %s %s dnat to %s" % (loopback, host_port, to), tag,
                                translation=Translation(protocol, mapping.host_port, mapping.host_port, ip,
                                                        mapping.container_port, loopback, "", False)))
            rules.append(tagged(family, "nat-postrouting", "ip saddr %s ip daddr %s oifname \"%s\" %s masquerade" % (
                LOOPBACK[4], ip, bridge, container_port), tag))
    return structure(family) + rules


def _as_nft_prints(network):
    """'192.0.2.7/32' -> '192.0.2.7': one host as nft lists it, so that the rule reads back as rendered."""
    address, slash, bits = network.partition("/")
    return address if bits == ("128" if ":" in address else "32") else network


def render_plain(mapping, endpoint, mark, tag):
    """A plain mapping: its elements of the bridge's DNAT map (protocol . host port : address . port)
    and set of flows to mark (address . protocol . port . host port: the original port tells its flows
    from Docker's), and the bridge's rules that look them up, one DNAT and one mark rule per protocol
    (nft types ``ct original proto-dst`` only once the protocol is known)."""
    family, protocol, bridge = mapping.family, mapping.protocol, endpoint.bridge
    v, ip = FAMILIES[family], endpoint.address(family)
    dnat, forward = bridge_set_name(DNAT_MAP, bridge), bridge_set_name(FORWARD_SET, bridge)
    return [
        bridge_structure(family, "nat-mappings", "iifname != \"%s\" dnat %s to meta l4proto . th dport map @%s"
                         % (bridge, v, dnat), bridge),
        bridge_structure(family, "filter-forward", "oifname \"%s\" ct status dnat meta l4proto %s %s daddr . "
                         "meta l4proto . th dport . ct original proto-dst @%s meta mark set %s"
                         % (bridge, protocol, v, forward, mark.setter()), "%s/%s" % (bridge, protocol)),
        tagged(family, dnat, "%s . %d : %s . %d" % (protocol, mapping.host_port, ip, mapping.container_port),
               tag, NftElement, Translation(protocol, mapping.host_port, mapping.host_port, ip, mapping.container_port)),
        tagged(family, forward, "%s . %s . %d . %d" % (ip, protocol, mapping.container_port, mapping.host_port),
               tag, NftElement)]


class NftablesLayout:
    """hotport's table beside Docker's nftables backend, whose accepted flows carry ``mark``."""

    name = "nftables"

    def __init__(self, mark):
        self.mark = mark

    def render(self, mapping, endpoint):
        return render(mapping, endpoint, self.mark)

    def mappings(self, rules):
        return live_mappings(rules)

    def describe(self):
        return {"layout": self.name, "accept_mark": self.mark.describe()}


def read_listing(document):
    """``nft -j list ruleset`` (parsed) -> ({(family, table): {chain or set name: [NftRule or
    NftElement]}} of hotport's and Docker's tables, with the elements of hotport's sets and maps,
    Docker's accept mark or None)."""
    tables, mark = {}, None
    for item in document.get("nftables") or []:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        kind, body = next(iter(item.items()))
        if kind not in LISTED or not isinstance(body, dict):
            continue
        table = body.get("name") if kind == "table" else body.get("table")
        if table not in (TABLE, DOCKER_TABLE) or body.get("family") not in FAMILY_OF:
            continue
        family = FAMILY_OF[body["family"]]
        chains = tables.setdefault((family, table), {})
        name = body.get("chain") if kind == "rule" else body.get("name")
        if kind == "table" or not isinstance(name, str):
            continue
        if kind == "chain":
            chains.setdefault(name, [])
        elif kind == "rule" and isinstance(body.get("expr"), list):
            expr, comment = body["expr"], str(body.get("comment") or "")
            if (family, table, comment) == (4, DOCKER_TABLE, ACCEPT_MARK_COMMENT) and mark is None:
                mark = accept_mark(expr)
            if table == DOCKER_TABLE and name != DOCKER_DNAT_CHAIN:
                continue  # of Docker's rules only its DNATs (claims) and its accept mark matter
            handle = body.get("handle") if isinstance(body.get("handle"), int) else 0
            chains.setdefault(name, []).append(
                NftRule(family, name, statement_text(expr), comment, table, handle, translation(expr)))
        elif kind in ("set", "map") and table == TABLE:
            elements = body.get("elem") if isinstance(body.get("elem"), list) else []
            chains[name] = [element for element in (_element(family, name, entry) for entry in elements)
                            if element is not None]
    return tables, mark


def _element(family, name, entry):
    """One element of hotport's set or map ``name`` as nft's JSON lists it -> NftElement, or None."""
    key, value = entry if isinstance(entry, list) and len(entry) == 2 else (entry, None)
    inner = key.get("elem") if isinstance(key, dict) else None
    if not isinstance(inner, dict):
        return None
    key_parts, value_parts = _parts(inner.get("val")), _parts(value)
    expr = " . ".join(key_parts) + (" : " + " . ".join(value_parts) if value is not None else "")
    found = None
    if is_dnat_map(name) and len(key_parts) == 2 and len(value_parts) == 2 and key_parts[1].isdigit() \
            and value_parts[1].isdigit():
        found = Translation(key_parts[0], int(key_parts[1]), int(key_parts[1]), value_parts[0], int(value_parts[1]))
    return NftElement(family, name, expr, str(inner.get("comment") or ""), TABLE, translation=found)


def _parts(value):
    if isinstance(value, dict) and "concat" in value:
        return [str(part) for part in value["concat"]]
    return [] if value is None else [str(value)]


def accept_mark(expr):
    """The statements of Docker's "ALLOW FW MARK" rule -> AcceptMark (None when not a mark match)."""
    for statement in expr:
        match = statement.get("match") if isinstance(statement, dict) else None
        if not isinstance(match, dict) or not isinstance(match.get("right"), int):
            continue
        left = match.get("left")
        if left == {"meta": {"key": "mark"}}:
            return AcceptMark(match["right"], 0xffffffff)
        masked = left.get("&") if isinstance(left, dict) else None
        if isinstance(masked, list) and len(masked) == 2 and masked[0] == {"meta": {"key": "mark"}} \
                and isinstance(masked[1], int):
            return AcceptMark(match["right"], masked[1])
    return None


def translation(expr):
    """A rule's statements -> the Translation of its DNAT to one address, or None."""
    matches = [statement["match"] for statement in expr
               if isinstance(statement, dict) and isinstance(statement.get("match"), dict)]
    dnat = next((statement["dnat"] for statement in expr
                 if isinstance(statement, dict) and isinstance(statement.get("dnat"), dict)), None)
    ports = next((match for match in matches if _payload(match) in [(protocol, "dport") for protocol in PORT_PROTOCOLS]),
                 None)
    if dnat is None or ports is None or not isinstance(dnat.get("addr"), str):
        return None
    first, last = _range(ports.get("right"))
    if first is None:
        return None
    host_ip = next((_address(match["right"]) for match in matches
                    if _payload(match)[1:] == ("daddr",) and match.get("op") == "=="), "")
    source = next((_address(match["right"]) for match in matches if _payload(match)[1:] == ("saddr",)), "")
    from_outside = any(match.get("left") == {"meta": {"key": "iifname"}} and match.get("op") == "!="
                       for match in matches)
    return Translation(_payload(ports)[0], first, last, dnat["addr"], _range(dnat.get("port"))[0], host_ip,
                       source, from_outside)


def _payload(match):
    payload = (match.get("left") or {}).get("payload") if isinstance(match.get("left"), dict) else None
    return (payload.get("protocol"), payload.get("field")) if isinstance(payload, dict) else (None, None)


def _range(value):
    if isinstance(value, int):
        return value, value
    bounds = value.get("range") if isinstance(value, dict) else None
    if isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(bound, int) for bound in bounds):
        return bounds[0], bounds[1]
    return None, None


def _address(value):
    if isinstance(value, dict) and isinstance(value.get("prefix"), dict):
        return "%s/%s" % (value["prefix"].get("addr"), value["prefix"].get("len"))
    return value if isinstance(value, str) else ""


def live_mappings(rules):
    """hotport's rules -> {(family, owner tag): PortMapping}, options read back: the sources of the
    DNATs, local access from a DNAT that also serves the bridge or a loopback DNAT."""
    found, sources, local = {}, {}, set()
    for rule in rules:
        tag, translated = parse_owner_tag(rule.owner_tag), rule.translation
        if tag is None or translated is None:
            continue
        key = (rule.family, rule.owner_tag)
        if isinstance(rule, NftElement):
            found[key] = (tag[1], tag[2], translated.container_port, "::" if rule.family == 6 else "")
            continue
        if rule.chain == "nat-output" or not translated.from_outside:
            local.add(key)
        if rule.chain != "nat-mappings":
            continue
        found[key] = (tag[1], tag[2], translated.container_port, translated.host_ip or ("::" if rule.family == 6 else ""))
        if translated.source:
            sources.setdefault(key, set()).add(translated.source)
    return dict((key, PortMapping(*fields, allowed_sources=ordered_sources(sources.get(key, ())),
                                  local_access=key in local))
                for key, fields in found.items())


# nft's JSON back to its text syntax, for diff mode and for the identity of rules hotport does not own.
UNQUALIFIED_META = ("iifname", "oifname", "iif", "oif")
MARK = {"meta": {"key": "mark"}}
INTERFACE_KEYS = ("iifname", "oifname")
VERDICTS = ("accept", "drop", "return", "masquerade", "counter", "continue")


def statement_text(expr):
    """A rule's statements (nft's JSON) -> nft's text for them."""
    return " ".join(_statement(statement) for statement in expr)


def _statement(statement):
    kind, body = next(iter(statement.items())) if isinstance(statement, dict) and len(statement) == 1 else ("", None)
    if kind == "match" and isinstance(body, dict):
        left, op, right = body.get("left"), body.get("op"), body.get("right")
        interface = left in [{"meta": {"key": key}} for key in INTERFACE_KEYS]
        shown_op = "" if op in ("==", "in") and not (isinstance(left, dict) and "&" in left) else op + " "
        return "%s %s%s" % (_value(left, mark=_is_mark(left)), shown_op, _value(right, interface, _is_mark(left)))
    if kind in VERDICTS and body is None:
        return kind
    if kind in ("jump", "goto") and isinstance(body, dict):
        return "%s %s" % (kind, body.get("target"))
    if kind in ("dnat", "snat") and isinstance(body, dict):
        family = " %s" % body["family"] if body.get("family") else ""
        address = _value(body.get("addr"))
        if isinstance(body.get("addr"), str) and ":" in body["addr"] and "port" in body:
            address = "[%s]" % address
        return "%s%s to %s%s" % (kind, family, address, ":%s" % _value(body["port"]) if "port" in body else "")
    if kind == "mangle" and isinstance(body, dict):
        return "%s set %s" % (_value(body.get("key")), _value(body.get("value"), mark=_is_mark(body.get("key"))))
    return json.dumps(statement, sort_keys=True)


def _is_mark(value):
    masked = value.get("&") if isinstance(value, dict) else None
    return value == MARK or (isinstance(masked, list) and masked[:1] == [MARK])


def _value(value, quoted=False, mark=False):
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return "0x%08x" % value if mark else str(value)
    if isinstance(value, str):
        return '"%s"' % value if quoted else value
    if isinstance(value, list):
        return ",".join(_value(part, quoted, mark) for part in value)
    if not isinstance(value, dict) or len(value) != 1:
        return json.dumps(value, sort_keys=True)
    kind, body = next(iter(value.items()))
    if kind == "payload" and isinstance(body, dict):
        return "%s %s" % (body.get("protocol"), body.get("field"))
    if kind == "meta" and isinstance(body, dict):
        return body.get("key") if body.get("key") in UNQUALIFIED_META else "meta %s" % body.get("key")
    if kind == "ct" and isinstance(body, dict):
        return "ct %s%s" % ("%s " % body["dir"] if body.get("dir") else "", body.get("key"))
    if kind == "fib" and isinstance(body, dict):
        return "fib %s %s" % (" . ".join(body.get("flags") or []), body.get("result"))
    if kind == "concat" and isinstance(body, list):
        return " . ".join(_value(part) for part in body)
    if kind == "prefix" and isinstance(body, dict):
        return "%s/%s" % (body.get("addr"), body.get("len"))
    if kind == "range" and isinstance(body, list):
        return "-".join(_value(part) for part in body)
    if kind == "map" and isinstance(body, dict):
        return "%s map %s" % (_value(body.get("key")), _value(body.get("data")))
    if kind in ("&", "|") and isinstance(body, list) and len(body) == 2:
        return "%s %s %s" % (_value(body[0], mark=mark), kind, _value(body[1], mark=mark))
    if kind == "set" and isinstance(body, list):
        return "{ %s }" % ", ".join(_value(part, quoted, mark) for part in body)
    return json.dumps(value, sort_keys=True)
