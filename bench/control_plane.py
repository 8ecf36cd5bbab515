"""Control-plane benchmark (run as root: python bench/control_plane.py, or make bench): N mappings on one host, four ways, side by side (issue 5).

Each run gets a fresh throwaway network namespace loaded with a Docker 20.10-like ruleset
(tests/netns/rulesets/classic.rules), real iptables-nft, nothing of the host touched.

  hotport   reconcile() of N mappings: the module's whole logic after the Docker API lookup
            (read, detect, render, plan, one iptables-restore), first apply and re-run
  recipe    the hand-written recipe: per rule `iptables -C ... || iptables -A ...`, 3 rules per
            mapping, in one bash process (no Python on the way)
  builtin   ansible.builtin.iptables in a loop, 3 items per mapping, one ansible-playbook run
            (N <= 100; it needs minutes beyond)
  floor     one `iptables-restore --noflush` of exactly hotport's rules plus one iptables-save
  nftables  the same reconcile() through the nftables publisher, in a namespace holding Docker 29's
            nftables tables (tests/netns/rulesets/docker29-nftables.nft)
  nft-floor one `nft -f` of exactly those rules plus one `nft -j list ruleset` (what a run reads)

Writes docs/bench/control_plane.json; plot.py draws it.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".build"))

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo, Endpoint  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_render import Layout  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables import (  # noqa: E402
    NftablesPublisher, batch_text)
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import Plan  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.runners import ProcessRunner  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.ports import PortMapping  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.apply import reconcile  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.planner import MappingRequest  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import publisher_for  # noqa: E402
import saved_results  # noqa: E402

RULESET = os.path.join(ROOT, "tests", "netns", "rulesets", "classic.rules")
NFT_RULESET = os.path.join(ROOT, "tests", "netns", "rulesets", "docker29-nftables.nft")
ENGINE = EngineInfo("bench", "bench", "iptables")
NFT_ENGINE = EngineInfo("bench", "bench", "nftables")
WEB = Endpoint("be7c4" + "0" * 59, "web", "172.17.0.2", "bridge", "docker0")
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "1,10,100,1000").split(",")]
BUILTIN_MAX = int(os.environ.get("BENCH_BUILTIN_MAX", "100"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
METHODS = os.environ.get("BENCH_METHODS", "hotport,floor,nftables,nft-floor,recipe,builtin").split(",")
OUT = os.path.join(ROOT, "docs", "bench", "control_plane.json")


class Namespace:
    """A throwaway namespace with Docker's iptables chains, or with ``nft`` its nftables tables."""

    def __init__(self, nft=False):
        self.name = "hp-bench-" + uuid.uuid4().hex[:8]
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.prefix = ["ip", "netns", "exec", self.name]
        # The bridge the mappings forward to: a run checks the container's address against it.
        for command in (["link", "add", "docker0", "type", "bridge"], ["addr", "add", "172.17.0.1/16", "dev", "docker0"]):
            subprocess.run(["ip", "-n", self.name] + command, check=True)
        if nft:
            self.run(["nft", "-f", NFT_RULESET])
        else:
            self.run(["iptables-nft-restore"], open(RULESET).read())

    def run(self, argv, data=None):
        return subprocess.run(self.prefix + argv, input=data, capture_output=True, text=True, check=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def mappings(count):
    return [PortMapping("tcp", 20000 + index, 80) for index in range(count)]


def mapped(runner, engine, count, lock):
    """One run of reconcile() mapping ``count`` ports to WEB, as the module makes it."""
    return reconcile(runner, engine, publisher_for(runner, engine), MappingRequest(WEB, tuple(mappings(count))),
                     lock_path=lock)


def rules(count):
    return [rule for mapping in mappings(count) for rule in Layout().render(mapping, WEB)]


def untagged(rule):
    """The same rule as a person writes it by hand: no comment."""
    args = list(rule.args)
    at = args.index("comment") - 1
    return rule.table, rule.chain, args[:at] + args[at + 4:]


def timed(action):
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def hotport(count):
    with Namespace() as ns, tempfile.TemporaryDirectory() as tmp:
        runner = ProcessRunner(ns.prefix)
        lock = os.path.join(tmp, "lock")
        apply = timed(lambda: mapped(runner, ENGINE, count, lock))
        rerun = timed(lambda: mapped(runner, ENGINE, count, lock))
        assert len([line for line in ns.run(["iptables-nft-save"]).stdout.splitlines() if "hotport:" in line]) == 3 * count
    return apply, rerun


def nftables(count):
    with Namespace(nft=True) as ns, tempfile.TemporaryDirectory() as tmp:
        runner = ProcessRunner(ns.prefix)
        lock = os.path.join(tmp, "lock")
        apply = timed(lambda: mapped(runner, NFT_ENGINE, count, lock))
        rerun = timed(lambda: mapped(runner, NFT_ENGINE, count, lock))
        assert ns.run(["nft", "list", "table", "ip", "hotport"]).stdout.count(": 172.17.0.2 . 80") == count
    return apply, rerun


def nft_floor(count):
    with Namespace(nft=True) as ns:
        publisher = NftablesPublisher(ProcessRunner(ns.prefix), NFT_ENGINE)
        live = publisher.read()
        rules = [rule for mapping in mappings(count) for rule in publisher.render(live, mapping, WEB)]
        batch = batch_text({4: Plan(add=list(dict((rule.same_as, rule) for rule in rules).values()))})
        apply = timed(lambda: (ns.run(["nft", "-f", "-"], batch), ns.run(["nft", "-j", "list", "ruleset"])))
        rerun = timed(lambda: ns.run(["nft", "-j", "list", "ruleset"]))
    return apply, rerun


def recipe(count):
    lines = ["set -e"]
    for table, chain, args in map(untagged, rules(count)):
        words = " ".join("'%s'" % word for word in args)
        lines.append("iptables -w -t %s -C %s %s 2>/dev/null || iptables -w -t %s -A %s %s"
                     % (table, chain, words, table, chain, words))
    script = "\n".join(lines) + "\n"
    with Namespace() as ns:
        apply = timed(lambda: ns.run(["bash", "-s"], script))
        rerun = timed(lambda: ns.run(["bash", "-s"], script))
    return apply, rerun


def builtin_items(count):
    items = []
    for table, chain, args in map(untagged, rules(count)):
        option = dict(zip(args, args[1:]))
        item = {"table": table, "chain": chain, "protocol": "tcp", "destination_port": option["--dport"],
                "jump": option["-j"]}
        if "--to-destination" in option:
            item["to_destination"] = option["--to-destination"]
        for flag, key in (("-s", "source"), ("-d", "destination"), ("-o", "out_interface")):
            if flag in args:
                item[key] = option[flag]
        if "-i" in args:
            item["in_interface"] = "!" + option["-i"]
        items.append(item)
    return items


PLAY = """- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.iptables:
        table: "{{ item.table }}"
        chain: "{{ item.chain }}"
        protocol: "{{ item.protocol }}"
        destination_port: "{{ item.destination_port }}"
        jump: "{{ item.jump }}"
        to_destination: "{{ item.to_destination | default(omit) }}"
        source: "{{ item.source | default(omit) }}"
        destination: "{{ item.destination | default(omit) }}"
        in_interface: "{{ item.in_interface | default(omit) }}"
        out_interface: "{{ item.out_interface | default(omit) }}"
      loop: "{{ bench_items }}"
"""


def builtin(count):
    with Namespace() as ns, tempfile.TemporaryDirectory() as tmp:
        play = os.path.join(tmp, "play.yml")
        items = os.path.join(tmp, "items.json")
        open(play, "w").write(PLAY)
        json.dump({"bench_items": builtin_items(count)}, open(items, "w"))
        argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
                "-e", "ansible_python_interpreter=" + sys.executable, "-e", "@" + items, play]
        apply = timed(lambda: ns.run(argv))
        rerun = timed(lambda: ns.run(argv))
        saved = ns.run(["iptables-nft-save"]).stdout.splitlines()
        assert sum("--to-destination 172.17.0.2:80" in line for line in saved) == count
    return apply, rerun


def floor(count):
    plan = Plan()
    plan.add = rules(count)
    text = plan.restore_text()
    with Namespace() as ns:
        apply = timed(lambda: (ns.run(["iptables-nft-restore", "--noflush", "-w"], text), ns.run(["iptables-nft-save"])))
        rerun = timed(lambda: ns.run(["iptables-nft-save"]))
    return apply, rerun


def main():
    results = []
    for count in SIZES:
        for name, method in (("hotport", hotport), ("floor", floor), ("nftables", nftables), ("nft-floor", nft_floor),
                             ("recipe", recipe), ("builtin", builtin)):
            if (name == "builtin" and count > BUILTIN_MAX) or name not in METHODS:
                continue
            repeats = REPEAT if name in ("hotport", "floor", "nftables", "nft-floor") else 1
            runs = [method(count) for dummy in range(repeats)]
            apply = statistics.median(run[0] for run in runs)
            rerun = statistics.median(run[1] for run in runs)
            results.append({"method": name, "mappings": count, "rules": 3 * count, "apply_s": apply, "rerun_s": rerun})
            print("%-8s N=%-5d apply %8.3f s  re-run %8.3f s" % (name, count, apply, rerun), flush=True)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    facts = dict((name, subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip())
                 for name, argv in (("kernel", ["uname", "-r"]), ("iptables", ["iptables", "--version"])))
    facts.update(cpus=os.cpu_count(), results=saved_results.merged(OUT, results, "method", METHODS))
    with open(OUT, "w") as out:
        json.dump(facts, out, indent=2)


if __name__ == "__main__":
    main()
