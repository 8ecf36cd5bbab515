"""Run inside a benchmark host (python3 host_timing.py MODE < arguments as JSON): times what bench/through_ansible.py
cannot time from outside without docker exec's own cost in the figure.

  inprocess  the module's work without Ansible, in one process on the host: import hotport's
             module_utils, connect, docker info, resolve the container, reconcile (apply_request)
  floor      one write of exactly hotport's rules (iptables-restore --noflush, or nft -f) plus
             one read (iptables-save, or nft -j list ruleset); and the read alone; each round
             starts from a host without them (the shell command "undo")

Prints JSON.
"""
import json
import subprocess
import sys
import time

ARGS = json.load(sys.stdin)


def timed(action):
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(argv, data=None):
    subprocess.run(argv, input=data, capture_output=True, text=True, check=True)


def inprocess():
    sys.path.insert(0, ARGS["collections"])
    start = time.perf_counter()
    from ansible_collections.hotport.docker.plugins.module_utils import docker_api
    from ansible_collections.hotport.docker.plugins.module_utils.desired import apply_request
    from ansible_collections.hotport.docker.plugins.module_utils.runners import ProcessRunner
    imported = time.perf_counter()
    client = docker_api.connect(None, 60)
    engine = docker_api.engine_info(client)
    connected = time.perf_counter()
    apply_request(ProcessRunner(), client, engine, ARGS["request"])
    done = time.perf_counter()
    return {"import": imported - start, "engine": connected - imported, "request": done - connected,
            "total": done - start}


def floor():
    if ARGS["publisher"] == "nftables":
        write, read = ["nft", "-f", "-"], ["nft", "-j", "list", "ruleset"]
    else:
        write, read = ["iptables-restore", "--noflush", "-w"], ["iptables-save"]
    rounds = []
    for dummy in range(ARGS["repeat"]):
        subprocess.run(ARGS["undo"], shell=True, capture_output=True, check=False)  # from a host without them
        rounds.append({"apply": timed(lambda: (run(write, ARGS["rules"]), run(read))), "rerun": timed(lambda: run(read))})
    subprocess.run(ARGS["undo"], shell=True, capture_output=True, check=False)
    return rounds


print(json.dumps({"inprocess": inprocess, "floor": floor}[sys.argv[1]]()))
