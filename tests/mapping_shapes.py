"""Every shape a mapping can take, and what each kernel publisher renders for them.

The unit suite compares the rendering with the golden rulesets in
tests/unit/plugins/module_utils/golden/ (one file per engine layout and backend, reviewed as
diffs); the namespace suite applies each shape and reads it back. After a deliberate change of a
rendering, regenerate the files with one command and review the diff:

    make golden        (python tests/mapping_shapes.py)
"""
import collections
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # The import makes the collection importable (tests/conftest.py).
    import tests.conftest  # noqa: F401 pylint: disable=unused-import

from ansible_collections.hotport.docker.plugins.module_utils.docker_api import Endpoint  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_render import (  # noqa: E402
    Docker28Layout, Layout)
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables_render import render  # noqa: E402
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables_rules import AcceptMark  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unit", "plugins", "module_utils", "golden")
# The host addresses of the test namespaces (tests/netns/conftest.py) and their bridges.
HOST_ADDRESS, HOST_ADDRESS6 = "198.18.0.1", "2001:db8:1::1"
CONTAINER_ID = "5a9e0000c0de" + "0" * 52

Shape = collections.namedtuple("Shape", "name ports sources local bridge ip ip6")
SHAPES = [
    Shape("plain", ["8080:80"], (), False, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("udp", ["5353:53/udp"], (), False, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("sctp", ["3868:3868/sctp"], (), False, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("host-ip", ["%s:8081:81" % HOST_ADDRESS], (), False, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("loopback", ["127.0.0.1:8082:82"], (), False, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("range", ["9000-9002:7000-7002"], (), False, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("ipv6", ["[::]:8083:83"], (), False, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("ipv6-host-ip", ["[%s]:8084:84/udp" % HOST_ADDRESS6], (), False, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("sources", ["8085:85"], ("198.18.0.0/30", "10.0.0.7"), False, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("local-access", ["8086:86"], (), True, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("sources-and-local", ["8087:87/udp"], ("10.0.0.0/8",), True, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("ipv6-sources", ["[::]:8088:88"], ("2001:db8::/64",), False, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("ipv6-local-access", ["[::]:8091:91"], (), True, "docker0", "172.17.0.2", "fd00:aa::2"),
    Shape("user-network", ["8089:89"], (), False, "br-5e1f0a7c9d2b", "172.18.0.2", ""),
    Shape("bridge-named-with-a-digit", ["8090:90"], (), False, "0weird", "172.19.0.2", ""),
]
NFT_MARK = AcceptMark(0x4000000, 0x4000000)  # bridge-accept-fwmark of tests/netns/rulesets/docker29-nftables.nft
LAYOUTS = {"iptables-classic": Layout(), "iptables-classic-noproxy": Layout(userland_proxy=False),
           "iptables-docker28": Docker28Layout(), "iptables-docker28-noproxy": Docker28Layout(userland_proxy=False)}
BACKENDS = sorted(LAYOUTS) + ["nftables"]


def endpoint(shape):
    return Endpoint(CONTAINER_ID, "web", shape.ip, "bridge" if shape.bridge == "docker0" else "net", shape.bridge,
                    shape.ip6)


def mappings(shape):
    return parse_ports(shape.ports, shape.sources, shape.local)


def rendered(backend, shape):
    """The rules ``backend`` renders for ``shape``, as the lines diff mode shows (rules shared by
    several mappings once)."""
    rules = {}
    for mapping in mappings(shape):
        found = render(mapping, endpoint(shape), NFT_MARK) if backend == "nftables" else \
            LAYOUTS[backend].render(mapping, endpoint(shape))
        for rule in found:
            rules.setdefault(rule.same_as, rule)
    return [rule.text() for rule in rules.values()]


def golden_text(backend):
    """The golden ruleset of ``backend``: every shape's rules under its name."""
    return "".join("# %s: %s%s%s\n%s\n" % (
        shape.name, " ".join(shape.ports), " allowed_sources=" + ",".join(shape.sources) if shape.sources else "",
        " local_access" if shape.local else "", "".join(line + "\n" for line in rendered(backend, shape)))
        for shape in SHAPES)


def golden_path(backend):
    return os.path.join(GOLDEN, backend + (".nft" if backend == "nftables" else ".rules"))


def main():
    os.makedirs(GOLDEN, exist_ok=True)
    for backend in BACKENDS:
        with open(golden_path(backend), "w") as out:
            out.write(golden_text(backend))
        print("wrote", os.path.relpath(golden_path(backend)))


if __name__ == "__main__":
    main()
