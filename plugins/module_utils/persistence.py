# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ruleset a boot restores (netfilter-persistent's rules.v4/v6, iptables-services'
/etc/sysconfig/iptables): what of the live ruleset belongs there, checked to load, written
atomically.

Saved: the admin's own rules and chains, and Docker's chains and structural rules (dockerd finds
them in place and adds nothing twice). Left out, because they name container addresses that a
boot may change: every hotport rule (the reconciler writes them after dockerd starts, at the
addresses containers then have), the rules of Docker's nat and filter DOCKER chains, Docker's
per-container hairpin MASQUERADE and (Docker 28+) its per-container raw DROP (dockerd writes them
again as it starts containers).
Saving those would restore, at boot, rules pointing at whatever container takes an old address
next, and rules of containers removed long before.
"""

from __future__ import annotations

import re

from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import NetfilterError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables import find_docker_iptables
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import Rule, parse_save, save_words
from ansible_collections.hotport.docker.plugins.module_utils.safe_files import write_atomically

# Chains whose rules dockerd writes per container (and, on Docker 28+, per bridge) as it starts.
DOCKER_CONTAINER_CHAINS = (("nat", "DOCKER"), ("filter", "DOCKER"))
COUNTERS = re.compile(r"\[\d+:\d+\]$")
# iptables-services writes its files 0600; netfilter-persistent 0640 (the role passes that).
SAVED_MODE = 0o600


def _single_address(text):
    return text is not None and text.endswith(("/32", "/128"))


def _docker_bridges(tables):
    """Docker's bridges, as its nat rules name them: a bridge's subnet is masqueraded on the way
    out of it (``-s SUBNET ! -o BRIDGE -j MASQUERADE``), its own traffic returns from nat DOCKER."""
    bridges = set()
    nat = tables.get("nat")
    for rule in nat.rules("POSTROUTING") if nat else ():
        if rule.value("-j") == "MASQUERADE" and "!" in rule.args and rule.args[rule.args.index("!") + 1] == "-o":
            bridges.add(rule.args[rule.args.index("!") + 2])
    for rule in nat.rules("DOCKER") if nat else ():
        if rule.value("-j") == "RETURN" and rule.value("-i"):
            bridges.add(rule.value("-i"))
    return bridges


def _written_per_container(rule, bridges):
    """Whether dockerd writes ``rule`` anew for a container it starts: its DOCKER chains, the
    hairpin MASQUERADE from a container's address to itself, and (Docker 28+) the raw DROP of
    packets to a container's address from outside its bridge."""
    if (rule.table, rule.chain) in DOCKER_CONTAINER_CHAINS:
        return True
    if rule.table == "nat" and rule.chain == "POSTROUTING" and rule.value("-j") == "MASQUERADE":
        return _single_address(rule.value("-s")) and rule.value("-s") == rule.value("-d")
    if rule.table == "raw" and rule.chain == "PREROUTING" and len(rule.args) == 7:
        args = rule.args
        return all([args[0] == "-d", _single_address(args[1]), args[2:4] == ("!", "-i"), args[4] in bridges,
                    args[5:] == ("-j", "DROP")])
    return False


def persistable(save_text, family=4):
    """iptables-save output (every table) -> the text to restore at boot: no timestamps, counters
    zeroed (an unchanged ruleset gives an unchanged file), without hotport's rules and the rules
    dockerd writes per container."""
    bridges = _docker_bridges(parse_save(save_text, family))
    lines, table = [], None
    for raw in save_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            line = COUNTERS.sub("[0:0]", line)
        elif line.startswith("-A "):
            words = save_words(line)
            rule = Rule(table, words[1], tuple(words[2:]), family=family)
            if rule.owner_tag or _written_per_container(rule, bridges):
                continue
        lines.append(line)
    return "\n".join(lines) + "\n" if lines else ""


def persist(runner, targets, mode=SAVED_MODE):
    """Save the live ruleset of the iptables variant that holds Docker's chains, per family, into
    ``targets`` ({4: path, 6: path}) -> {path: changed}. A file is written only after
    ``*-restore --test`` accepted its text, and only when that text differs from the file's.
    Raises NetfilterError (nothing written for that family and the ones after it)."""
    iptables = find_docker_iptables(runner)[0]
    changed = {}
    for family, path in sorted(targets.items()):
        tool = iptables if family == 4 else iptables.ipv6()
        if not runner.which(tool.binary("save")):
            continue
        text = persistable(tool.save(), family)
        rc, out, err = runner.run([tool.binary("restore"), "--test"], data=text)
        if rc != 0:
            raise NetfilterError("%s --test refused the ruleset to save for boot (rc=%d): %s; %s was "
                                 "left as it was." % (tool.binary("restore"), rc, (err or out).strip(), path))
        changed[path] = write_atomically(path, text, mode, "saved boot ruleset")
    return changed
