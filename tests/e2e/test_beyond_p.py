"""Beyond -p (issue 6) on this host's engine, with real packets: source allow-lists, loopback and
hairpin access, port ranges, and a clash that arises after the mapping was made."""
import subprocess

from .conftest import HOST_ADDRESS, PAYLOAD, docker, fetch, module, ruleset, sh


def fetch_loopback(port):
    result = sh("curl", "-sS", "-m", "3", "http://127.0.0.1:%d/" % port, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def fetch_from_container(container, address, port):
    """The page through socat inside the container (the static busybox's wget crashes at times)."""
    result = subprocess.run(["docker", "exec", "-i", container, "/bin/socat", "-T3", "-", "TCP:%s:%d" % (address, port)],
                            input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    return lines[-1] if result.returncode == 0 and lines else None


def test_allowed_sources_admit_only_the_listed_networks(containers):
    web = containers()
    admitted = module(container=web, ports=["18110:80"], allowed_sources=["198.18.0.0/30"])
    assert admitted["changed"] and admitted["mappings"][0]["allowed_sources"] == ["198.18.0.0/30"]
    assert fetch(18110) == PAYLOAD
    narrowed = module(container=web, ports=["18110:80"], allowed_sources=["10.0.0.0/8"])
    assert narrowed["changed"]
    assert fetch(18110) is None  # the client 198.18.0.2 is not listed: dropped on the host
    assert "-A INPUT -p tcp -m tcp --dport 18110" in ruleset()
    assert not module(container=web, ports=["18110:80"], allowed_sources=["10.0.0.0/8"])["changed"]
    module(container=web, ports=["18110:80"], allowed_sources=[])
    assert fetch(18110) == PAYLOAD
    assert "--dport 18110" not in "\n".join(line for line in ruleset().splitlines() if "INPUT" in line)


def test_local_access_serves_loopback_and_hairpin(containers):
    web, neighbour = containers(), containers()
    module(container=web, ports=["18111:80"])
    assert fetch(18111) == PAYLOAD
    assert fetch_loopback(18111) is None  # no docker-proxy for our mapping: loopback needs local_access
    assert fetch_from_container(neighbour, HOST_ADDRESS, 18111) is None
    opened = module(container=web, ports=["18111:80"], local_access=True)
    assert opened["changed"] and opened["mappings"][0]["local_access"] is True
    assert fetch_loopback(18111) == PAYLOAD
    assert fetch_from_container(neighbour, HOST_ADDRESS, 18111) == PAYLOAD
    assert fetch(18111) == PAYLOAD
    assert not module(container=web, ports=["18111:80"], local_access=True)["changed"]
    module(container=web, ports=["18111:80"], local_access=False)
    assert fetch_loopback(18111) is None and fetch(18111) == PAYLOAD


def test_loopback_host_ip_is_served_on_loopback_only(containers):
    web = containers()
    module(container=web, ports=["127.0.0.1:18112:80"])
    assert fetch_loopback(18112) == PAYLOAD
    assert fetch(18112) is None


def test_port_range_maps_port_by_port(containers):
    web = containers()
    docker("exec", web, "/bin/busybox", "sh", "-c",
           "busybox mkdir -p /w81 && echo eighty-one > /w81/index.html && busybox httpd -p 81 -h /w81")
    mapped = module(container=web, ports=["18120-18121:80-81"])
    assert [m["host_port"] for m in mapped["mappings"]] == [18120, 18121]
    assert fetch(18120) == PAYLOAD and fetch(18121) == "eighty-one"


def test_info_flags_a_host_socket_that_takes_the_port_later(containers):
    web = containers()
    module(container=web, ports=["18113:80"])
    containers("--network", "host", command=("/bin/busybox", "httpd", "-f", "-p", "18113", "-h", "/www"))
    found = module(module_name="hotport.docker.container_port_map_info", container=web)
    item = [m for m in found["mappings"] if m["host_port"] == 18113][0]
    assert "socket:*:18113/tcp" in item["clashes_with"], item
