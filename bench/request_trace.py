"""How one request travels through the collection's code (run as root: python bench/request_trace.py).

One ``8080:80`` request, through desired.apply_request as the module makes it, against a
throwaway network namespace holding a Docker 28 iptables ruleset (iptables publisher) or Docker
29's nftables tables (nftables publisher), with the engine's answers played from memory. Every
Python call into plugins/ is counted while the request runs (sys.setprofile):

  files     the plugin files the request enters
  calls     calls of functions defined in plugins/
  switches  those calls made from another file of plugins/ (a reader following the request
            jumps to another file; calls from generated code such as a dataclass's __init__,
            or from the standard library, are no jump)

Prints one JSON line per publisher; docs/docsite/rst/guide_benchmarks.rst keeps the figures before and after a
refactor. Measures structure, not speed.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".build"))
sys.path.insert(0, ROOT)

from ansible_collections.hotport.docker.plugins.module_utils.desired import apply_request  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.docker_api import EngineInfo  # noqa: E402
from tests.netns.conftest import Host, NftHost  # noqa: E402

PLUGINS = os.path.realpath(os.path.join(ROOT, "plugins"))
CONTAINER_ID = "c0ffee0000aa" + "0" * 52


class Connection:
    def is_local(self):
        return True


class Engine:
    """The Docker API answers one request needs: the container and its network."""

    connection = Connection()
    base_url = "unix:///var/run/docker.sock"

    def inspect_container(self, container):
        return {"Id": CONTAINER_ID, "Name": "/web", "State": {"Running": True},
                "HostConfig": {"NetworkMode": "bridge"},
                "NetworkSettings": {"Networks": {"bridge": {"NetworkID": "n" * 64, "IPAddress": "172.17.0.2"}}}}

    def inspect_network(self, network):
        return {"Name": "bridge", "Id": "n" * 64, "Driver": "bridge",
                "IPAM": {"Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]}}


def trace(call):
    """Run ``call()`` -> ({file:function: calls}, {calls, switches}) within plugins/."""
    files, counts = {}, {"calls": 0, "switches": 0}

    def profile(frame, event, arg):
        if event != "call":
            return
        path = os.path.realpath(frame.f_code.co_filename)
        if not path.startswith(PLUGINS):
            return
        name = "%s:%s" % (os.path.relpath(path, PLUGINS), frame.f_code.co_name)
        files[name] = files.get(name, 0) + 1
        counts["calls"] += 1
        caller = os.path.realpath(frame.f_back.f_code.co_filename) if frame.f_back else ""
        if caller.startswith(PLUGINS) and caller != path:
            counts["switches"] += 1

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return files, counts


def main():
    plugin_files = sum(len([name for name in names if name.endswith(".py") and name != "__init__.py"])
                       for dummy, dummy, names in os.walk(PLUGINS))
    for backend, make in (("iptables", lambda: Host("nft", "docker28")), ("nftables", NftHost)):
        host = make()
        try:
            engine = EngineInfo("bench", "bench", backend)
            request = {"container": "web", "ports": ["8080:80"], "state": "present"}
            files, counts = trace(lambda: apply_request(host.runner, Engine(), engine, request))
        finally:
            host.close()
        entered = set(name.partition(":")[0] for name in files)
        print(json.dumps(dict(publisher=backend, files=len(entered), plugin_files=plugin_files, **counts)))
        if os.environ.get("TRACE_DETAIL"):
            for name, calls in sorted(files.items(), key=lambda pair: -pair[1]):
                print("  %5d %s" % (calls, name))


if __name__ == "__main__":
    main()
