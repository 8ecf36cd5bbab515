import pytest

from ansible_collections.hotport.docker.plugins.module_utils.ports import (
    PortMapping, PortSpecError, parse_port_item, parse_ports)


@pytest.mark.parametrize("spec, expected", [
    ("8080:80", [PortMapping("tcp", 8080, 80)]),
    ("8080:80/udp", [PortMapping("udp", 8080, 80)]),
    ("8080:80/SCTP", [PortMapping("sctp", 8080, 80)]),
    ("65535:1", [PortMapping("tcp", 65535, 1)]),
    ("1:65535/udp", [PortMapping("udp", 1, 65535)]),
    ("127.0.0.1:8080:80", [PortMapping("tcp", 8080, 80, "127.0.0.1", local_access=True)]),
    ("0.0.0.0:8080:80", [PortMapping("tcp", 8080, 80)]),
    ("9000-9002:7000-7002", [PortMapping("tcp", 9000, 7000), PortMapping("tcp", 9001, 7001),
                             PortMapping("tcp", 9002, 7002)]),
    (8080, None),
    ({"host_port": 53, "container_port": 5353, "protocol": "udp"}, [PortMapping("udp", 53, 5353)]),
    ({"host_ip": "10.1.2.3", "host_port": "80-81", "container_port": "8080-8081"},
     [PortMapping("tcp", 80, 8080, "10.1.2.3"), PortMapping("tcp", 81, 8081, "10.1.2.3")]),
    ({"host_port": 80, "container_port": 8080, "allowed_sources": "10.0.0.0/8, 192.0.2.7", "local_access": "yes"},
     [PortMapping("tcp", 80, 8080, "", ("10.0.0.0/8", "192.0.2.7/32"), True)]),
    ("[::]:8080:80", [PortMapping("tcp", 8080, 80, "::")]),
    ("[2001:DB8:0::1]:53:53/udp", [PortMapping("udp", 53, 53, "2001:db8::1")]),
    ({"host_ip": "::", "host_port": 80, "container_port": 80, "allowed_sources": ["10.0.0.0/8", "2001:db8::7"]},
     [PortMapping("tcp", 80, 80, "::", ("2001:db8::7/128",))]),
])
def test_valid_specs(spec, expected):
    if expected is None:
        with pytest.raises(PortSpecError, match="no host port given"):
            parse_port_item(spec)
    else:
        assert parse_port_item(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("80", "no host port given"),
    ("127.0.0.1::80", "host port is missing"),
    ("0:80", "out of range"),
    ("8080:65536", "out of range"),
    ("8010-8000:80-90", "reversed"),
    ("8000-8002:80", "must be the same length"),
    ("8080:80/icmp", "unknown protocol"),
    ("web:8080:80", "not an IP address"),
    ("[::1]:8080:80", "::1 cannot be forwarded"),
    ("[::ffff:10.0.0.1]:8080:80", "write the IPv4 address 10.0.0.1"),
    ("[::]8080:80", "must be written"),
    ("1:2:3:4", "too many ':'"),
    ("8080:http", "not a port number"),
    ("8080;rm -rf /:80", "character"),
    ("8080:80/tcp$(id)", "character"),
    ({"host_port": 8080}, "container_port is required"),
    ({"container_port": 80}, "host_port is required"),
    ({"host_port": 1, "container_port": 1, "proto": "tcp"}, "unknown key"),
    (["8080:80"], "a port is a string"),
    (True, "a port is a string"),
    ({"host_port": 1, "container_port": 1, "allowed_sources": ["10.0.0.1/8"]}, "host bits set; write the network, 10.0.0.0/8"),
    ({"host_port": 1, "container_port": 1, "allowed_sources": ["office"]}, "not an IP address or network"),
    ({"host_port": 1, "container_port": 1, "allowed_sources": ["2001:db8::/32"]}, "lists no IPv4 network"),
    ({"host_ip": "::", "host_port": 1, "container_port": 1, "allowed_sources": ["10.0.0.0/8"]}, "lists no IPv6 network"),
    ({"host_ip": "::", "host_port": 1, "container_port": 1, "allowed_sources": ["fe80::/64"]}, "link-local"),
    ({"host_port": 1, "container_port": 1, "allowed_sources": 10}, "is a list of networks"),
    ({"host_port": 1, "container_port": 1, "local_access": "maybe"}, "true or false"),
    ({"host_ip": "fe80::1%eth0", "host_port": 1, "container_port": 1}, "IPv6 zone"),
    ({"host_ip": "2001:db8::1%1", "host_port": 1, "container_port": 1}, "IPv6 zone"),
    ({"host_ip": "::", "host_port": 1, "container_port": 1, "allowed_sources": ["2001:db8::%1/64"]}, "IPv6 zone"),
])
def test_invalid_specs_name_the_problem(spec, message):
    with pytest.raises(PortSpecError, match=message):
        parse_port_item(spec)


def test_duplicates_collapse_and_conflicts_are_refused():
    assert parse_ports(["8080:80", "8080:80/tcp"]) == [PortMapping("tcp", 8080, 80)]
    with pytest.raises(PortSpecError, match="both claim host port tcp/8080"):
        parse_ports(["8080:80", "8080:81"])
    with pytest.raises(PortSpecError, match="both claim"):
        parse_ports(["8080:80", "127.0.0.1:8080:80"])
    assert len(parse_ports(["127.0.0.1:8080:80", "10.0.0.1:8080:80", "8080:80/udp"])) == 3
    # One host port in both families is two mappings, as Docker publishes it.
    assert [m.family for m in parse_ports(["8080:80", "[::]:8080:80"])] == [4, 6]
    with pytest.raises(PortSpecError, match="both claim"):
        parse_ports(["[::]:8080:80", "[2001:db8::1]:8080:80"])


@pytest.mark.parametrize("mapping", [
    PortMapping("udp", 5353, 53, "127.0.0.1", local_access=True),
    PortMapping("tcp", 8080, 80),
    PortMapping("tcp", 8080, 80, "10.1.2.3", ("10.0.0.0/8",), True),
    PortMapping("tcp", 8080, 80, "::"),
    PortMapping("tcp", 8080, 80, "2001:db8::1", ("2001:db8::/32",), True),
])
def test_request_round_trips(mapping):
    assert parse_port_item(mapping.as_request()) == [mapping]


def test_task_options_apply_unless_an_item_sets_its_own():
    items = ["8080:80", {"host_port": 8081, "container_port": 81, "allowed_sources": []}]
    first, second = parse_ports(items, allowed_sources=["10.0.0.0/8"], local_access=True)
    assert first.allowed_sources == ("10.0.0.0/8",) and first.local_access
    assert second.allowed_sources == () and second.local_access
