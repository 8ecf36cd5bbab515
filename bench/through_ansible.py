"""The module's cost as users pay it (issue 14): container_port_map through ansible-playbook on a
Docker-in-Docker host (Docker 29.7.2, hotport/dind:sid-29) reached over the
community.docker.docker connection, minus an ansible.builtin.ping task of the same play.

For N mappings (N in BENCH_SIZES; the sidecar, one container per mapping, up to BENCH_SIDECAR_MAX)
and each publisher (iptables and sidecar on a host with Docker's iptables backend, nftables on one
with its nftables backend and bridge-accept-fwmark), REPEAT rounds of: ping, apply, re-run, absent.
Beside it, on the same host:
  in-process  the module's work without Ansible in one python3 process (bench/host_timing.py):
              import, connect and docker info, resolve and reconcile
  floor       one write of exactly hotport's rules plus one read, and the read alone (kernel
              publishers; a sidecar's floor is Docker creating containers)

Run as root (make bench-ansible); writes docs/bench/through_ansible.json, plot.py draws it.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import dind_host  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "1,10,100,1000").split(",")]
SIDECAR_MAX = int(os.environ.get("BENCH_SIDECAR_MAX", "100"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
OUT = os.path.join(ROOT, "docs", "bench", "through_ansible.json")
COLLECTIONS = "/opt/hotport-bench"
HOSTS = {
    "hp-bench-iptables": {},
    "hp-bench-nftables": dind_host.NFTABLES,
}
PUBLISHERS = [  # name, host, module options
    ("iptables", "hp-bench-iptables", {}),
    ("nftables", "hp-bench-nftables", {}),
    ("sidecar", "hp-bench-iptables", {"method": "sidecar", "sidecar_image": "hotport/bench"}),
]
# How to read back exactly hotport's rules (one transaction a table), and remove them, for the floor.
GROUPED = "awk '/^\\*/ {t=$0} /hotport:/ {%s rules[t] = rules[t] $0 \"\\n\"} END {for (t in rules) printf \"%%s\\n%%sCOMMIT\\n\", t, rules[t]}'"
SAVED_RULES = {
    "iptables": ("iptables-save | " + GROUPED % "",
                 "iptables-save | " + GROUPED % "sub(/^-A/, \"-D\");" + " | iptables-restore --noflush -w"),
    "nftables": ("nft list table ip hotport", "nft delete table ip hotport"),
}


def sh(argv, data=None, check=True):
    return subprocess.run(argv, input=data, capture_output=True, text=True, check=check).stdout


def in_host(host, command, data=None):
    return sh(["docker", "exec", "-i", host, "sh", "-c", command], data)


def host_timing(host, mode, args):
    """bench/host_timing.py MODE on the host, ``args`` on its stdin -> its JSON answer."""
    return json.loads(in_host(host, "python3 %s/ansible_collections/hotport/docker/bench/host_timing.py %s"
                              % (COLLECTIONS, mode), json.dumps(args)))


def start_host(name, daemon):
    version = dind_host.start(name, daemon, ["hotport/target", "hotport/bench"])
    in_host(name, "docker run -d --name web hotport/target")
    install_collection(name)
    return version


def install_collection(name):
    """hotport's plugins and bench/host_timing.py into the host, for host_timing()."""
    plugins = subprocess.Popen(["tar", "-C", ROOT, "-cf", "-", "plugins", "bench/host_timing.py"], stdout=subprocess.PIPE)
    subprocess.run(["docker", "exec", "-i", name, "sh", "-c", "mkdir -p %s/ansible_collections/hotport/docker && "
                    "tar -C %s/ansible_collections/hotport/docker -xf -" % (COLLECTIONS, COLLECTIONS)],
                   stdin=plugins.stdout, check=True)
    plugins.wait()


def ports(count):
    return ["%d:80" % (20000 + index) for index in range(count)]


def play(host, options, count):
    module = dict(container="web", ports="{{ bench_ports }}", **options)
    tasks = []
    for round_ in range(REPEAT):
        tasks += [
            {"name": "ping %d" % round_, "ansible.builtin.ping": {}},
            {"name": "apply %d" % round_, "hotport.docker.container_port_map": module},
            {"name": "rerun %d" % round_, "hotport.docker.container_port_map": module},
            {"name": "absent %d" % round_, "hotport.docker.container_port_map": dict(module, state="absent", ports=[])},
        ]
    tasks.append({"name": "apply for the floor", "hotport.docker.container_port_map": module})
    return [{"hosts": host, "gather_facts": False, "vars": {"bench_ports": ports(count)}, "tasks": tasks}]


def through_ansible(host, options, count):
    with tempfile.TemporaryDirectory() as tmp:
        paths = dict((name, os.path.join(tmp, name)) for name in ("play.yml", "inventory", "times"))
        json.dump(play(host, options, count), open(paths["play.yml"], "w"))
        open(paths["inventory"], "w").write("%s ansible_connection=community.docker.docker "
                                            "ansible_python_interpreter=/usr/bin/python3\n" % host)
        env = dict(os.environ, HOTPORT_BENCH_TIMES=paths["times"], ANSIBLE_CALLBACKS_ENABLED="bench_timer",
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "bench", "callback"),
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"))
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", paths["inventory"],
                        paths["play.yml"]], env=env, check=True, capture_output=True, text=True)
        results = [json.loads(line) for line in open(paths["times"])]
    times = dict((result["task"], result) for result in results)
    assert not any(result["failed"] for result in results), results
    for round_ in range(REPEAT):
        assert times["apply %d" % round_]["changed"] and not times["rerun %d" % round_]["changed"], times
    ping = [times["ping %d" % round_]["seconds"] for round_ in range(REPEAT)]
    figures = {"ping": statistics.median(ping)}
    for step in ("apply", "rerun"):
        figures[step] = statistics.median(times["%s %d" % (step, round_)]["seconds"] - ping[round_]
                                          for round_ in range(REPEAT))
    return figures


def in_process(host, options, count):
    rounds = []
    for dummy in range(REPEAT):
        request = dict(container="web", ports=ports(count), **options)
        step = {}
        for name, state in (("apply", "present"), ("rerun", "present"), ("absent", "absent")):
            step[name] = host_timing(host, "inprocess", {"collections": COLLECTIONS, "request": dict(request, state=state)})
        rounds.append(step)
    return dict(("%s_%s" % (step, part), statistics.median(round_[step][part] for round_ in rounds))
                for step in ("apply", "rerun") for part in ("import", "engine", "request", "total"))


def floor(host, publisher):
    read, undo = SAVED_RULES[publisher]
    rounds = host_timing(host, "floor", {"publisher": publisher, "rules": in_host(host, read), "undo": undo,
                                         "repeat": REPEAT})
    return dict((step, statistics.median(round_[step] for round_ in rounds)) for step in ("apply", "rerun"))


def main():
    engines = dict((name, start_host(name, daemon)) for name, daemon in HOSTS.items())
    results = []
    try:
        for publisher, host, options in PUBLISHERS:
            for count in SIZES:
                if publisher == "sidecar" and count > SIDECAR_MAX:
                    continue
                row = {"publisher": publisher, "n": count, "engine": engines[host]}
                row.update(through_ansible(host, options, count))
                if publisher in SAVED_RULES:
                    row["floor"] = floor(host, publisher)  # also removes the play's last apply
                else:
                    in_host(host, "docker ps -aq --filter label=io.hotport.sidecar | xargs -r docker rm -f")
                row["in_process"] = in_process(host, options, count)
                print(json.dumps(row), flush=True)
                results.append(row)
    finally:
        for name in HOSTS:
            dind_host.remove(name)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    machine = {"cpus": os.cpu_count(), "kernel": os.uname().release}
    json.dump(dict(machine, results=results), open(OUT, "w"), indent=1)


if __name__ == "__main__":
    main()
